"""Checkpoint folders: save, completeness check, load; stage-1 projector files; tiny fixtures.

A checkpoint is a plain Hugging Face folder (config.json, safetensors weights,
generation_config.json, processor + tokenizer + chat template) plus `sicog_meta.json`. The
folder is built under a temp name and renamed when complete (`atomic_dir`), and the meta file
carries `"complete": true`, written last, so a half-written folder never passes as a checkpoint.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sicog.utils.io import SicogError, atomic_dir, git_commit, write_json

log = logging.getLogger(__name__)

META_FILE = "sicog_meta.json"
PROJECTOR_PREFIX = "multi_modal_projector."
# LLaVA's original projector names (mm_projector = Sequential(Linear, GELU, Linear))
_ORIGINAL_PROJECTOR_KEYS = {"0": "linear_1", "2": "linear_2"}


def llava_core(model):
    """The `LlavaForConditionalGeneration` inside `model` (unwraps PEFT and DDP wrappers)."""
    seen = model
    for _ in range(4):
        if hasattr(seen, "model") and hasattr(seen.model, "multi_modal_projector"):
            return seen
        if hasattr(seen, "get_base_model"):
            seen = seen.get_base_model()
        elif hasattr(seen, "module"):
            seen = seen.module
        else:
            break
    raise TypeError(f"not a LLaVA model: {type(model).__name__}")


def save_checkpoint(model, processor, out_dir, meta: dict | None = None, state_dict: dict | None = None) -> Path:
    """Write a complete checkpoint folder atomically and return its path.

    `meta` (stage, steps, data fingerprint, config …) goes into `sicog_meta.json` with the git
    commit and `complete: true`. `state_dict` (optional) overrides the model's own, e.g. weights
    gathered from DeepSpeed ZeRO-3. A PEFT-wrapped model must be merged first (`merge_lora`).
    """
    if hasattr(model, "peft_config"):
        raise SicogError("save_checkpoint: the model still has LoRA adapters; call sicog.model.parts.merge_lora first")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        processor.save_pretrained(tmp)
        if not (tmp / "generation_config.json").exists() and getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        record = dict(meta or {})
        record["git_commit"] = git_commit()
        record["complete"] = True  # last key, written last: the folder is whole
        write_json(tmp / META_FILE, record)
    log.info("saved checkpoint %s", out_dir)
    return out_dir


def read_meta(path) -> dict | None:
    """The parsed `sicog_meta.json` of a folder, or None when absent or unreadable."""
    try:
        return json.loads(Path(path, META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _has_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").exists()


def is_complete_checkpoint(path) -> bool:
    """True when `path` is a checkpoint folder whose meta says complete and whose files are present."""
    path = Path(path)
    meta = read_meta(path)
    return (
        path.is_dir()
        and isinstance(meta, dict)
        and meta.get("complete") is True
        and (path / "config.json").is_file()
        and _has_weights(path)
    )


def load_llava_folder(path, dtype=None, device=None, attn_implementation: str | None = None):
    """Load a LLaVA folder with stock transformers classes (no completeness check)."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    kwargs = {"dtype": dtype if dtype is not None else "auto"}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = LlavaForConditionalGeneration.from_pretrained(str(path), **kwargs)
    if device is not None:
        model = model.to(device)
    processor = AutoProcessor.from_pretrained(str(path))
    return model, processor


def load_checkpoint(path, dtype=None, device=None, attn_implementation: str | None = None):
    """Load (model, processor) from a complete sicog checkpoint; refuse an incomplete folder."""
    path = Path(path)
    if not path.is_dir():
        raise SicogError(f"{path}: checkpoint folder not found")
    if not is_complete_checkpoint(path):
        raise SicogError(
            f"{path}: not a complete checkpoint ({META_FILE} with \"complete\": true, config.json and "
            "safetensors weights are required); it may be a partial write of an interrupted run"
        )
    return load_llava_folder(path, dtype=dtype, device=device, attn_implementation=attn_implementation)


# --------------------------------------------------------------------------- projector
def save_projector(model, path) -> Path:
    """Write the projector weights alone (safetensors, keys `linear_1.weight` …): stage 1's output."""
    from safetensors.torch import save_file

    projector = llava_core(model).model.multi_modal_projector
    tensors = {k: v.detach().cpu().contiguous() for k, v in projector.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")  # renamed when whole: never a half-written file
    save_file(tensors, str(tmp), metadata={"format": "pt", "kind": "sicog-mm-projector"})
    tmp.replace(path)
    return path


def _normalise_projector_key(key: str) -> str:
    """Accept our keys, full-model keys, and LLaVA's original `mm_projector.0/2` names."""
    for prefix in ("model.multi_modal_projector.", PROJECTOR_PREFIX, "model.mm_projector.", "mm_projector."):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    head, _, rest = key.partition(".")
    return f"{_ORIGINAL_PROJECTOR_KEYS.get(head, head)}.{rest}" if rest else key


def load_projector(model, path) -> None:
    """Load projector weights written by `save_projector` (or LLaVA-style `mm_projector.*`)."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise SicogError(f"model.mm_projector: file not found: {path}")
    try:
        raw = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise SicogError(f"model.mm_projector: {path} is not a readable safetensors file: {e}") from None
    projector = llava_core(model).model.multi_modal_projector
    state = {_normalise_projector_key(k): v for k, v in raw.items()}
    expected = projector.state_dict()
    if set(state) != set(expected):
        raise SicogError(f"model.mm_projector: {path} has keys {sorted(state)}, expected {sorted(expected)}")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise SicogError(
                f"model.mm_projector: {path} key {k} has shape {tuple(v.shape)}, the model needs {tuple(expected[k].shape)}"
            )
    projector.load_state_dict(state)
    log.info("loaded projector from %s", path)


# --------------------------------------------------------------------------- fixtures
def make_tiny_checkpoint(out_dir, seed: int = 0, **tiny_overrides) -> Path:
    """Build a random-init tiny LLaVA (sizes of `TinyModelConfig`, overridable) and save it.

    For tests and examples: returns the complete checkpoint folder.
    """
    import dataclasses

    from sicog.config import ModelConfig, TinyModelConfig
    from sicog.model.build import build_model

    unknown = set(tiny_overrides) - {f.name for f in dataclasses.fields(TinyModelConfig)}
    if unknown:
        raise TypeError(f"make_tiny_checkpoint: unknown tiny sizes {sorted(unknown)}")
    cfg = ModelConfig(preset="tiny", tiny=TinyModelConfig(**tiny_overrides))
    model, processor = build_model(cfg, seed=seed)
    meta = {"stage": "init", "seed": seed, "config": dataclasses.asdict(cfg)}
    return save_checkpoint(model, processor, out_dir, meta)
