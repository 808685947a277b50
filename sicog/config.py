"""Typed configs: dataclasses loaded from YAML, `--set a.b=value` overrides, strict validation.

Each setting is declared once, as a field: `setting(default, help, choices=..., min=..., max=...)`
(sicog.utils.fields). Loading checks the type of every value given and its choices and range
(`check_field`); `check_config` checks every field of a config however it was made (YAML, flags,
`--set`, code), then the cross-field rules (a section's `cross_check`, the config's `validate`).
An unknown key, a wrong type or a value outside what is allowed is a ConfigError naming the file,
the dotted key and what is allowed. Every run saves its resolved config (`save_config`) into its
output folder.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from sicog.model_settings import LoraSettings, TinyModelConfig, UhdSettings  # noqa: F401 (re-exported)
from sicog.utils.fields import ConfigError, check_field, setting  # noqa: F401 (re-exported)
from sicog.utils.io import atomic_write
from sicog.utils.yaml_files import read_yaml

T = TypeVar("T")

MODEL_PARTS = ("vision_tower", "projector", "language_model")
ARCHS = ("llava", "uhd")  # one builder per name in sicog.model.build.BUILDERS
ATTN_IMPLEMENTATIONS = ("auto", "sdpa", "flash_attention_2", "eager")
ON_ERROR = ("raise", "skip")
PRECISION = (True, False, "auto")  # training.bf16 / training.tf32
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant",  # transformers'
                 "constant_with_warmup", "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr",
                 "cosine_warmup_with_min_lr", "warmup_stable_decay", "greedy")  # SchedulerType (tested)


# ------------------------------------------------------------------------ schema
@dataclass
class ModelConfig:
    """Which model to build. Exactly one source: `checkpoint`, or `preset`, or the two paths."""

    arch: str = setting("llava", "one builder per name in sicog.model.build.BUILDERS", choices=ARCHS)
    preset: str | None = setting(None, "tiny: random init, built offline", choices=("tiny",))
    checkpoint: str | None = None  # continue from an existing LLaVA checkpoint folder
    vision_tower: str | None = None  # local CLIP folder (e.g. clip-vit-large-patch14-336)
    language_model: str | None = None  # local causal-LM folder (e.g. Qwen2-7B-Instruct)
    mm_projector: str | None = None  # stage-1 projector safetensors to load into a fresh model
    vision_feature_layer: int = -2
    # LLaVA-1.5's preprocessing: pad the image to a square with the image processor's mean colour
    # (llava: instead of the centre crop; uhd: before slicing). Set when a model is built from a
    # preset or parts; a checkpoint keeps its processor's setting.
    pad_to_square: bool = False
    attn_implementation: str = setting("auto", choices=ATTN_IMPLEMENTATIONS)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    uhd: UhdSettings = field(default_factory=UhdSettings)


@dataclass
class DataSource:
    """One training file of a data mixture."""

    path: str = ""
    image_folder: str | None = None
    weight: float = setting(1.0, "sampling ratio relative to the other sources (those without a share)", min=0,
                            min_exclusive=True)
    # fraction of an epoch's samples drawn from this source, instead of a weight; the other
    # sources split the rest by their weights (share 0.1 for text-only data: 10% of the samples)
    share: float | None = None
    max_samples: int | None = setting(None, "the first N records of the file", min=1)


def check_shares(sources: list[DataSource], where: str = "data.sources") -> None:
    """Each share in (0, 1), instead of a weight; shares summing below 1; one source left unshared."""
    shared = [k for k, src in enumerate(sources) if src.share is not None]
    for k in shared:
        if not 0.0 < sources[k].share < 1.0:
            raise ConfigError(f"must be a fraction of the samples in (0, 1), got {sources[k].share}",
                              key=f"{where}[{k}].share")
        if sources[k].weight != 1.0:
            raise ConfigError("give a source a weight or a share, not both", key=f"{where}[{k}].share")
    if shared and (total := sum(sources[k].share for k in shared)) >= 1.0:
        raise ConfigError(f"the shares sum to {total:g}, must be below 1", key=f"{where}[{shared[-1]}].share")
    if shared and len(shared) == len(sources):
        raise ConfigError("every source has a share; at least one source needs a weight to take the rest "
                          "of the samples", key=f"{where}[{shared[-1]}].share")


@dataclass
class DataConfig:
    """Training data: one or more LLaVA JSON/JSONL files mixed by weight (or share)."""

    sources: list[DataSource] = field(default_factory=list)
    max_length: int = setting(2048, min=1)
    on_error: str = setting("raise", "record-level faults: raise, or skip and count", choices=ON_ERROR)
    group_by_length: bool = True
    num_samples: int | None = setting(None, "size of one epoch of the mixture (default: sum of sources)", min=1)
    num_workers: int = setting(0, min=0)
    allow_images_outside_folder: bool = False  # absolute / `..` / symlinked image paths (sicog.data.images)
    # padding-free batches (sicog.data.packing): whole samples concatenated into one row per device
    # batch, attention kept within each sample; exact, same loss and gradients as padded batches
    packing: bool = False
    # token budget of one packed device batch, image tokens included (default: per_device_train_batch_size
    # x max_length, the worst padded batch); must be >= max_length
    packing_tokens: int | None = setting(None, min=1)

    def cross_check(self) -> None:
        """Checks across fields, run at load (`_build`) and by `check_config` (keys relative to this section)."""
        check_shares(self.sources, "sources")
        if self.packing_tokens is not None and self.packing_tokens < self.max_length:
            raise ConfigError(f"must be >= max_length ({self.max_length}) so that every sample fits a pack, "
                              f"got {self.packing_tokens}", key="packing_tokens")


@dataclass
class TrainingConfig:
    """Optimisation; names follow transformers.TrainingArguments where they overlap."""

    output_dir: str = "runs/train"
    tunable_parts: list[str] = setting(choices=MODEL_PARTS, default_factory=lambda: list(MODEL_PARTS))
    learning_rate: float = setting(2e-5, min=0)
    part_learning_rates: dict[str, float] = setting(help="per part, e.g. {projector: 2e-4}", choices=MODEL_PARTS,
                                                    min=0, default_factory=dict)
    per_device_train_batch_size: int = setting(4, min=1)
    gradient_accumulation_steps: int = setting(1, min=1)
    num_train_epochs: float = setting(1.0, min=0, min_exclusive=True)
    max_steps: int = setting(-1, "-1: train for num_train_epochs", min=1, also=(-1,))
    # a fraction of the steps (transformers reads a warmup of 1 or more as a number of steps)
    warmup_ratio: float = setting(0.03, min=0, max=1, max_exclusive=True)
    weight_decay: float = setting(0.0, min=0)
    lr_scheduler_type: str = setting("cosine", choices=LR_SCHEDULERS)
    max_grad_norm: float = setting(1.0, "0: no clipping", min=0)
    seed: int = setting(0, "numpy's seed range", min=0, max=2**32 - 1)
    # true, false or auto (on when the GPU supports it; fp32 on CPU). true on a device without
    # support is an error when training starts.
    bf16: bool | str = setting("auto", choices=PRECISION)
    tf32: bool | str = setting("auto", choices=PRECISION)
    gradient_checkpointing: bool = False
    deepspeed: str | None = None  # path to a DeepSpeed JSON (configs/deepspeed/zero2.json ...)
    logging_steps: int = setting(10, min=1)
    save_steps: int = setting(500, min=1)
    save_total_limit: int | None = setting(2, min=1)
    resume: bool = True  # resume from the newest complete checkpoint in output_dir
    report_to: list[str] = field(default_factory=list)
    lora: LoraSettings = field(default_factory=LoraSettings)
    save_projector: bool = False  # also write mm_projector.safetensors (stage 1)
    # Liger kernels (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU) on CUDA; without the liger-kernel
    # package or a GPU the run falls back to stock transformers and logs why
    liger_kernels: bool = False


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
    """Check/convert a YAML value to the annotated type `tp`; raise ConfigError at key `where`."""
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
                if isinstance(value, dict) and dataclasses.is_dataclass(a):
                    raise  # a mapping meant this section: its own error names the inner key
                errors.append(e)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"expected {_type_name(tp)}, got {value!r}", key=where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping for {tp.__name__}, got {type(value).__name__}", key=where)
        return _build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {type(value).__name__} {value!r}", key=where)
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {type(value).__name__}", key=where)
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
    raise ConfigError(f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}", key=where)


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _check_fields(obj: Any, where: str, names: Any = None) -> None:
    """Choices and ranges of the fields in `names` (all when None), then the `cross_check` hook."""
    for f in dataclasses.fields(obj):
        if names is None or f.name in names:
            check_field(f, getattr(obj, f.name), _key(where, f.name))
    if hasattr(obj, "cross_check"):  # rules across the fields of a section (e.g. DataConfig's shares)
        try:
            obj.cross_check()
        except ConfigError as e:
            raise e.at(within=where) from None


def check_config(cfg: Any, where: str = "") -> None:
    """Every field of `cfg` and of its sections (nested configs, lists of them) against its choices
    and range, each section's `cross_check`, then `cfg.validate()` (the config's cross-field rules).

    Loading checks the values it reads; this checks a config however it was made (flags, code).
    The settings a command requires, and the flags errors name, are sicog.config_flags'.
    """
    _check_sections(cfg, where)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()


def _check_sections(cfg: Any, where: str) -> None:
    _check_fields(cfg, where)
    for f in dataclasses.fields(cfg):
        value, at = getattr(cfg, f.name), _key(where, f.name)
        if isinstance(value, list):
            places = [(f"{at}[{k}]", v) for k, v in enumerate(value)]
        elif isinstance(value, dict):  # sections by name (e.g. a pipeline's launchers.<kind>)
            places = [(f"{at}.{k}", v) for k, v in value.items()]
        else:
            places = [(at, value)]
        for place, v in places:
            if dataclasses.is_dataclass(v):
                _check_sections(v, place)


def _build(cls: type[T], data: dict, where: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    moved = getattr(cls, "MOVED_KEYS", {})  # old key -> where its setting lives now
    for key in data:
        if key in moved and key not in names:
            raise ConfigError(f"this key was replaced: {moved[key]}", key=_key(where, key))
        if key not in names:
            raise ConfigError(f"unknown key (valid keys: {', '.join(sorted(names))})", key=_key(where, key))
    kwargs = {k: _convert(v, hints[k], _key(where, k)) for k, v in data.items()}
    obj = cls(**kwargs)
    _check_fields(obj, where, data)  # the values given; defaults are the code's (see check_config)
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value parsed as YAML, so 3 is int, 2e-5 float, [a, b] list)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    return key.strip().split("."), value


def set_dotted(data: dict, keys: list[str], value: Any, where: str) -> None:
    """data[k1][k2]... = value, creating sections; mappings merge into existing sections."""
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{where}: '{k}' is not a section")
    if isinstance(value, dict):  # a mapping merges key by key (its keys may be dotted too)
        if not isinstance(node.get(keys[-1]), dict):
            node[keys[-1]] = {}
        merge_mapping(node[keys[-1]], value, where)
    else:
        node[keys[-1]] = copy.deepcopy(value)


def merge_mapping(data: dict, overrides: dict, where: str = "set") -> dict:
    """Merge a mapping of overrides into `data` in place; keys may be dotted (`training.max_steps`)."""
    for key, value in overrides.items():
        set_dotted(data, str(key).split("."), value, where)
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `--set a.b=value` overrides to the raw mapping (validated afterwards with the rest)."""
    for text in overrides:
        keys, value = parse_override(text)
        set_dotted(data, keys, value, f"--set {text}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Load YAML `path` into dataclass `cls`, apply overrides, validate; errors name file and key."""
    data: dict = {}
    label = str(path) if path else "<defaults>"
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: config file not found")
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
    if overrides:
        data = apply_overrides(data, overrides)
        label = f"{label} (with --set overrides)" if path else "--set"
    return config_from_mapping(cls, data, label)


def config_from_mapping(cls: type[T], data: dict, label: str) -> T:
    """Validate a raw mapping as dataclass `cls`; errors name `label` and the dotted key."""
    try:
        return _build(cls, data, "")
    except ConfigError as e:
        raise e.at(file=label) from None


def config_to_dict(cfg: Any) -> dict:
    """A plain mapping of a config dataclass (what `save_config` writes)."""
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically; secret values masked (sicog.utils.secrets)."""
    from sicog.utils.secrets import mask_secrets

    with atomic_write(path) as fh:
        yaml.safe_dump(mask_secrets(config_to_dict(cfg)), fh, sort_keys=False)
