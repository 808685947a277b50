"""`sicog dpo CONFIG.yaml`: a training stage's YAML (`sicog.config.TrainConfig`: model, data,
training - tunable parts, LoRA, DeepSpeed, resume) plus a `dpo` section. `data.sources` name
preference-pair files (`sicog.data.pairs`) instead of conversations."""

from __future__ import annotations

from dataclasses import dataclass, field

from sicog.config import TrainConfig, setting
from sicog.stages.dpo.loss import LOSS_TYPES

# model: a frozen copy of the starting model; precomputed: its log-probs of every training pair,
# computed once before the first step (no second model in memory); adapter: the LoRA model with
# its adapter disabled; auto: adapter with LoRA, else precomputed (model under ZeRO-3, whose
# partitioned weights cannot run outside the DeepSpeed engine)
REFERENCES = ("auto", "model", "precomputed", "adapter")


@dataclass
class DPOSettings:
    """The preference objective and its evaluation."""

    loss_type: str = setting("sigmoid", "sigmoid: DPO; ipo: IPO (per-token normalised)", choices=LOSS_TYPES)
    beta: float = setting(0.1, "strength of the pull toward the reference", min=0, min_exclusive=True)
    sft_weight: float = setting(0.0, "+ this x NLL of the chosen replies (RPO-style); 0: off", min=0)
    reference: str = setting("auto", choices=REFERENCES)
    heldout: str | None = None  # held-out pairs (.jsonl) scored before and after training
    heldout_image_folder: str | None = None  # their images (default: data.sources[0].image_folder)
    eval_batch_size: int = setting(8, "pairs per forward when scoring held-out/reference", min=1)


@dataclass
class DPOConfig(TrainConfig):
    """One DPO stage = one YAML of this shape."""

    stage: str = "dpo"
    dpo: DPOSettings = field(default_factory=DPOSettings)


def is_zero3(deepspeed: str | None) -> bool:
    """Whether a DeepSpeed JSON (by its file name, or its zero_optimization.stage) is ZeRO-3."""
    import json
    from pathlib import Path

    if not deepspeed:
        return False
    if "zero3" in Path(deepspeed).name:
        return True
    try:
        return int(json.loads(Path(deepspeed).read_text())["zero_optimization"]["stage"]) == 3
    except (OSError, ValueError, KeyError, TypeError):
        return False  # an unreadable file is reported when training loads it


def resolved_reference(cfg: DPOConfig) -> str:
    """The reference `auto` stands for under this config."""
    if cfg.dpo.reference != "auto":
        return cfg.dpo.reference
    if cfg.training.lora.enabled:
        return "adapter"
    return "model" if is_zero3(cfg.training.deepspeed) else "precomputed"
