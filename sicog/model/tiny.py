"""A random-init tiny checkpoint for tests, benchmarks and examples (builds offline, on CPU).

Kept apart from `build` and `checkpoint` so that neither needs the other: this module uses both.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from sicog.config import ModelConfig, TinyModelConfig, check_config
from sicog.model.build import build_model
from sicog.model.checkpoint import save_checkpoint


def make_tiny_checkpoint(out_dir, seed: int = 0, arch: str = "llava", **tiny_overrides) -> Path:
    """Build a random-init tiny LLaVA (or `arch="uhd"`: LLaVA-UHD) of the sizes of
    `TinyModelConfig` (overridable) and save it as a complete checkpoint folder; returns its path."""
    unknown = set(tiny_overrides) - {f.name for f in dataclasses.fields(TinyModelConfig)}
    if unknown:
        raise TypeError(f"make_tiny_checkpoint: unknown tiny sizes {sorted(unknown)}")
    cfg = ModelConfig(arch=arch, preset="tiny", tiny=TinyModelConfig(**tiny_overrides))
    check_config(cfg)  # sicog.model builds from a checked config
    model, processor = build_model(cfg, seed=seed)
    meta = {"stage": "init", "seed": seed, "config": dataclasses.asdict(cfg)}
    return save_checkpoint(model, processor, out_dir, meta)
