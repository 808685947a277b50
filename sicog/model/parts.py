"""Tunable parts of a LLaVA model: freezing, LoRA on the LM, per-part learning rates.

Parts (`sicog.config.MODEL_PARTS`) map to transformers' module names:
- `vision_tower`   -> `model.vision_tower` (CLIP)
- `projector`      -> `model.multi_modal_projector`
- `language_model` -> `model.language_model` + `lm_head`
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from sicog.config import MODEL_PARTS
from sicog.utils.io import SicogError

log = logging.getLogger(__name__)

# substrings of parameter names (plain, PEFT-wrapped or DDP-wrapped) -> part
_PART_MARKERS = (
    ("vision_tower", ".vision_tower."),
    ("projector", ".multi_modal_projector."),
    ("language_model", ".language_model."),
    ("language_model", "lm_head."),
)
_NO_DECAY = ("bias", "norm", "layernorm", "layer_norm", "ln_")


def part_of(param_name: str) -> str:
    """The part a parameter belongs to, from its (possibly wrapped) name."""
    name = f".{param_name}"
    for part, marker in _PART_MARKERS:
        if marker in name:
            return part
    raise ValueError(f"parameter {param_name!r} belongs to no known part ({', '.join(MODEL_PARTS)})")


def _check_parts(parts, where: str) -> None:
    unknown = [p for p in parts if p not in MODEL_PARTS]
    if unknown:
        raise SicogError(f"{where}: unknown part(s) {unknown} (known: {', '.join(MODEL_PARTS)})")


def _lora_target_regex(target_modules: list[str]) -> str:
    # Only the LM: CLIP also has q_proj/k_proj/v_proj, which a plain name list would catch.
    names = "|".join(sorted(set(target_modules)))
    return rf".*\.language_model\..*\.({names})"


def set_tunable_parts(model, parts: list[str], lora=None, part_learning_rates: dict | None = None):
    """Freeze everything but `parts`; with `lora.enabled`, wrap the LM in PEFT LoRA.

    With LoRA the LM's base weights (and lm_head) stay frozen and only the adapters train;
    `language_model` must then be in `parts`. Other tuned parts are registered as PEFT
    `modules_to_save` so adapter checkpoints carry them. Returns the model to train (the PEFT
    wrapper when LoRA is on). `part_learning_rates` is only validated here (see `param_groups`).
    """
    parts = list(parts)
    _check_parts(parts, "training.tunable_parts")
    if not parts:
        raise SicogError("training.tunable_parts: at least one part must be tunable")
    lrs = dict(part_learning_rates or {})
    _check_parts(lrs, "training.part_learning_rates")
    frozen_with_lr = [p for p in lrs if p not in parts]
    if frozen_with_lr:
        raise SicogError(
            f"training.part_learning_rates: {frozen_with_lr} not in training.tunable_parts {parts} (a frozen part has no learning rate)"
        )
    use_lora = bool(lora is not None and getattr(lora, "enabled", False))
    if use_lora and "language_model" not in parts:
        raise SicogError("training.lora.enabled needs 'language_model' in training.tunable_parts (LoRA adapts the LM)")

    for name, param in model.named_parameters():
        param.requires_grad_(part_of(name) in parts)
    if not use_lora:
        return model

    from peft import LoraConfig, get_peft_model

    others = {"vision_tower": "vision_tower", "projector": "multi_modal_projector"}
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=_lora_target_regex(lora.target_modules),
        modules_to_save=[others[p] for p in parts if p in others] or None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    wrapped = get_peft_model(model, config)
    log.info("LoRA on the language model: r=%d alpha=%d targets=%s", lora.r, lora.alpha, lora.target_modules)
    return wrapped


def merge_lora(model):
    """Merge LoRA adapters into the base weights; returns a plain LLaVA model (no-op without LoRA)."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def _numel(param) -> int:
    return int(getattr(param, "ds_numel", 0) or param.numel())  # ZeRO-3 partitions report 0 locally


def parameter_counts(model) -> "OrderedDict[str, dict[str, int]]":
    """{part: {"trainable": n, "frozen": n}} for every part (LoRA adapters count as language_model)."""
    counts = OrderedDict((p, {"trainable": 0, "frozen": 0}) for p in MODEL_PARTS)
    seen = set()
    for name, param in model.named_parameters():
        if id(param) in seen:  # tied weights are counted once
            continue
        seen.add(id(param))
        counts[part_of(name)]["trainable" if param.requires_grad else "frozen"] += _numel(param)
    return counts


def parameter_table(model) -> str:
    """A text table of trainable/frozen parameter counts per part (for the training log)."""
    counts = parameter_counts(model)
    rows = [("part", "trainable", "frozen", "total")]
    tt = tf = 0
    for part, c in counts.items():
        rows.append((part, f"{c['trainable']:,}", f"{c['frozen']:,}", f"{c['trainable'] + c['frozen']:,}"))
        tt, tf = tt + c["trainable"], tf + c["frozen"]
    rows.append(("total", f"{tt:,}", f"{tf:,}", f"{tt + tf:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def param_groups(model, base_lr: float, part_lrs: dict | None = None, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups: one per (part, decay/no-decay), each with its learning rate.

    Only trainable parameters are included; biases and norm weights get no weight decay.
    Each group carries a `name` key ("projector", "projector/no_decay", …) for logging.
    """
    part_lrs = dict(part_lrs or {})
    _check_parts(part_lrs, "training.part_learning_rates")
    buckets: "OrderedDict[tuple[str, bool], list]" = OrderedDict()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = weight_decay > 0 and not any(k in name.lower() for k in _NO_DECAY)
        buckets.setdefault((part_of(name), decay), []).append(param)
    groups = []
    for (part, decay), params in buckets.items():
        groups.append(
            {
                "name": part if decay or weight_decay == 0 else f"{part}/no_decay",
                "params": params,
                "lr": float(part_lrs.get(part, base_lr)),
                "weight_decay": weight_decay if decay else 0.0,
            }
        )
    return groups
