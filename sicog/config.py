"""Typed configs: dataclasses loaded from YAML, `--set a.b=value` overrides, strict validation.

An unknown key or a value of the wrong type is a ConfigError naming the file and the dotted
key. Every run saves its resolved config (`save_config`) into its output folder.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sicog.utils.io import SicogError, atomic_write

T = TypeVar("T")

MODEL_PARTS = ("vision_tower", "projector", "language_model")


class ConfigError(SicogError):
    """A config file or override is wrong; the message names the file and the dotted key."""


# ------------------------------------------------------------------------ schema
@dataclass
class TinyModelConfig:
    """Sizes of the random-init `tiny` preset (CLIP vision tower + Qwen2 LM)."""

    image_size: int = 64
    patch_size: int = 16
    vision_hidden_size: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    hidden_size: int = 96
    num_layers: int = 3
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 256
    max_position_embeddings: int = 1024
    vocab_size: int = 1024  # target size of the BPE tokenizer trained offline
    tokenizer_corpus: list[str] = field(default_factory=list)  # extra text files for the tokenizer


@dataclass
class LoraSettings:
    """LoRA on the language model (PEFT); merged into the weights on save."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class ModelConfig:
    """Which model to build. Exactly one source: `checkpoint`, or `preset`, or the two paths."""

    arch: str = "llava"
    preset: str | None = None  # "tiny": random init, built offline
    checkpoint: str | None = None  # continue from an existing LLaVA checkpoint folder
    vision_tower: str | None = None  # local CLIP folder (e.g. clip-vit-large-patch14-336)
    language_model: str | None = None  # local causal-LM folder (e.g. Qwen2-7B-Instruct)
    mm_projector: str | None = None  # stage-1 projector safetensors to load into a fresh model
    vision_feature_layer: int = -2
    attn_implementation: str = "auto"  # auto | sdpa | flash_attention_2 | eager
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class DataSource:
    """One training file of a data mixture."""

    path: str = ""
    image_folder: str | None = None
    weight: float = 1.0  # sampling ratio relative to the other sources
    max_samples: int | None = None


@dataclass
class DataConfig:
    """Training data: one or more LLaVA JSON/JSONL files mixed by weight."""

    sources: list[DataSource] = field(default_factory=list)
    max_length: int = 2048
    on_error: str = "raise"  # raise | skip (record-level faults, counted in the log)
    group_by_length: bool = True
    num_samples: int | None = None  # size of one epoch of the mixture (default: sum of sources)
    num_workers: int = 0


@dataclass
class TrainingConfig:
    """Optimisation; names follow transformers.TrainingArguments where they overlap."""

    output_dir: str = "runs/train"
    tunable_parts: list[str] = field(default_factory=lambda: list(MODEL_PARTS))
    learning_rate: float = 2e-5
    part_learning_rates: dict[str, float] = field(default_factory=dict)  # e.g. {projector: 2e-4}
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    num_train_epochs: float = 1.0
    max_steps: int = -1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 0
    bf16: str = "auto"  # auto: on when a GPU supports it, fp32 on CPU
    tf32: str = "auto"
    gradient_checkpointing: bool = False
    deepspeed: str | None = None  # path to a DeepSpeed JSON (configs/deepspeed/zero2.json ...)
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    resume: bool = True  # resume from the newest complete checkpoint in output_dir
    report_to: list[str] = field(default_factory=list)
    lora: LoraSettings = field(default_factory=LoraSettings)
    save_projector: bool = False  # also write mm_projector.safetensors (stage 1)


@dataclass
class TrainConfig:
    """One training stage = one YAML of this shape."""

    stage: str = "train"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)


# ------------------------------------------------------------------------ loading
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert a YAML value to the annotated type `tp`; raise ConfigError naming `where`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: expected {_type_name(tp)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML reads "2e-5" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _build(cls: type[T], data: dict, where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown key (valid keys: {', '.join(sorted(names))})".replace(": .", ": "))
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value parsed as YAML, so 3 is int, 2e-5 float, [a, b] list)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `--set` overrides to the raw mapping (validated afterwards with the rest)."""
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text}: '{k}' is not a section")
        node[keys[-1]] = value
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load YAML `path` into dataclass `cls`, apply overrides, validate; errors name file and key."""
    data: dict = {}
    label = str(path) if path else "<defaults>"
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
    if overrides:
        data = apply_overrides(data, overrides)
        label = f"{label} (with --set overrides)" if path else "--set"
    try:
        return _build(cls, data, "")
    except ConfigError as e:
        raise ConfigError(f"{label}: key {str(e).lstrip('.')}") from None


def config_to_dict(cfg: Any) -> dict:
    """A plain mapping of a config dataclass (what `save_config` writes)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    with atomic_write(path) as fh:
        yaml.safe_dump(config_to_dict(cfg), fh, sort_keys=False)
