"""Checkpoint folders: save, completeness check, load; stage-1 projector files.

A checkpoint is a plain Hugging Face folder (config.json, safetensors weights,
generation_config.json, processor + tokenizer + chat template). Ours add `sicog_meta.json`:
the folder is built under a temp name and renamed when complete (`atomic_dir`), and the meta
file carries `"complete": true`, written last, so a half-written folder never passes as a
checkpoint. A stock LLaVA folder (no meta) loads too, once its files are all there.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
from pathlib import Path
from typing import Callable

from sicog.model.weights import safetensors_error, safetensors_problem  # noqa: F401 (importers read them here too)
from sicog.utils.io import SicogError, atomic_dir, git_commit, write_json

log = logging.getLogger(__name__)

META_FILE = "sicog_meta.json"
#: model types of loadable folders: stock LLaVA, and sicog's LLaVA-UHD (`arch: uhd`, remote code)
CHECKPOINT_MODEL_TYPES = ("llava", "sicog_uhd")
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
        nest_clip_tower_keys(tmp)
        processor.save_pretrained(tmp)
        if not (tmp / "generation_config.json").exists() and getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(tmp)
        record = dict(meta or {})
        record["git_commit"] = git_commit()
        record["complete"] = True  # last key, written last: the folder is whole
        write_json(tmp / META_FILE, record)
    log.info("saved checkpoint %s", out_dir)
    return out_dir


#: where vLLM (and transformers 4.x) read a CLIP tower's weights inside a LLaVA checkpoint
CLIP_TOWER_PREFIX = "vision_tower.vision_model."


def _rename_safetensors_keys(path: Path, rename: Callable[[str], str]) -> bool:
    """Rename the tensors of a safetensors file in place (through a temp file, then an atomic
    replace): a new header, the data bytes copied unchanged (offsets are relative to the data, so
    they hold). True when a name changed."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
        renamed = {(k if k == "__metadata__" else rename(k)): v for k, v in header.items()}
        if list(renamed) == list(header):
            return False
        if len(renamed) != len(header):
            raise SicogError(f"{path}: renaming the tower's tensors would merge two of them")
        raw = json.dumps(renamed, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)  # the format pads its header with spaces to 8 bytes
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as out:
            out.write(struct.pack("<Q", len(raw)))
            out.write(raw)
            shutil.copyfileobj(f, out, length=16 << 20)
    tmp.replace(path)
    return True


def nest_clip_tower_keys(folder) -> bool:
    """Store a LLaVA folder's CLIP tower under `vision_tower.vision_model.*`, the names vLLM reads
    (and every llava-hf checkpoint uses); transformers 5 writes `vision_tower.embeddings.*` /
    `vision_tower.encoder.*` but reads both (its CLIPVisionModel conversion strips the
    `vision_model.` prefix), bit-identically. No-op for other towers, uhd folders and a folder
    already in that layout; the shard index is rewritten with the files. True when renamed."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if config.get("model_type") != "llava" or (config.get("vision_config") or {}).get("model_type") != "clip_vision_model":
        return False

    def rename(key: str) -> str:
        if key.startswith("vision_tower.") and not key.startswith(CLIP_TOWER_PREFIX):
            return CLIP_TOWER_PREFIX + key[len("vision_tower."):]
        return key

    changed = False
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text(encoding="utf-8"))
        for shard in sorted({f for k, f in data["weight_map"].items() if rename(k) != k}):
            changed |= _rename_safetensors_keys(folder / shard, rename)
        data["weight_map"] = {rename(k): f for k, f in data["weight_map"].items()}
        write_json(index, data)
    elif (folder / "model.safetensors").is_file():
        changed = _rename_safetensors_keys(folder / "model.safetensors", rename)
    return changed


def read_meta(path) -> dict | None:
    """The parsed `sicog_meta.json` of a folder, or None when absent or unreadable."""
    try:
        return json.loads(Path(path, META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


#: weight files a folder may hold, with the index that lists their shards
_WEIGHT_FILES = (("model.safetensors", "model.safetensors.index.json"),
                 ("pytorch_model.bin", "pytorch_model.bin.index.json"))


def _weights_problem(path: Path) -> str | None:
    """None when the model weights are whole: the single file, or every shard its index names
    (safetensors files also have a readable header covering their data)."""
    for single, index in _WEIGHT_FILES:
        if (path / single).is_file():
            return safetensors_problem(path / single) if single.endswith(".safetensors") else None
        if (path / index).is_file():
            try:
                shards = set(json.loads((path / index).read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, AttributeError):
                return f"{index} is unreadable"
            missing = sorted(f for f in shards if not (path / f).is_file())
            if missing:
                return f"weight shard(s) {', '.join(missing)} missing"
            bad = [p for f in sorted(shards) if f.endswith(".safetensors") and (p := safetensors_problem(path / f))]
            return "; ".join(bad) if bad else None
    return "no model weights (model.safetensors or a sharded index)"


def checkpoint_problems(path) -> list[str]:
    """What keeps `path` from being a complete LLaVA checkpoint folder (empty when complete).

    Any folder that stock transformers loads as LLaVA qualifies: config.json of model_type
    "llava", whole weights, the processor (processor_config.json or preprocessor_config.json)
    and tokenizer (tokenizer_config.json + tokenizer.json or tokenizer.model). A folder that
    holds our `sicog_meta.json` must in addition say `"complete": true` (written last).
    """
    path = Path(path)
    if not path.is_dir():
        return ["folder not found"]
    problems = []
    try:
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
        if model_type not in CHECKPOINT_MODEL_TYPES:
            problems.append(f"config.json has model_type {model_type!r}, not 'llava' (or 'sicog_uhd')")
    except (OSError, ValueError, AttributeError):
        problems.append("no readable config.json")
    weights = _weights_problem(path)
    if weights:
        problems.append(weights)
    if not any((path / f).is_file() for f in ("processor_config.json", "preprocessor_config.json")):
        problems.append("no processor_config.json or preprocessor_config.json")
    if not (path / "tokenizer_config.json").is_file() or not any(
            (path / f).is_file() for f in ("tokenizer.json", "tokenizer.model")):
        problems.append("no tokenizer (tokenizer_config.json with tokenizer.json or tokenizer.model)")
    if (path / META_FILE).exists():
        meta = read_meta(path)
        if not isinstance(meta, dict) or meta.get("complete") is not True:
            problems.append(f'{META_FILE} lacks "complete": true (a partial write of an interrupted run?)')
    return problems


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
    """Load (model, processor) from a complete LLaVA folder: one of ours, or a stock one such as
    llava-hf/llava-1.5-7b-hf saved by transformers. An incomplete folder is refused, naming what
    is missing. This is what `sicog sample`, `sicog evaluate` and `model.checkpoint` use."""
    path = Path(path)
    if not path.is_dir():
        raise SicogError(f"{path}: checkpoint folder not found")
    problems = checkpoint_problems(path)
    if problems:
        raise SicogError(f"{path}: not a complete checkpoint: {'; '.join(problems)}")
    from sicog.model.uhd.build import is_uhd_folder, load_uhd_folder

    if is_uhd_folder(path):
        return load_uhd_folder(path, dtype=dtype, device=device, attn_implementation=attn_implementation)
    if not (path / META_FILE).exists():
        log.info("%s has no %s: loading it as a stock LLaVA folder", path, META_FILE)
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
