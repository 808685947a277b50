"""The gradients of a stage's first optimizer step, as the optimizer receives them (after the
gradient accumulation and the all-reduce of every rank). Imported by the tests, and run under
torchrun as `python -m tests.stages._step_gradients CONFIG OUT [CONFIG OUT ...]` (rank 0 saves)."""

from __future__ import annotations

import os
import sys

import torch

from sicog.config import TrainConfig, load_config
from sicog.stages.throughput import ThroughputCallback
from sicog.stages.train import train_stage


def step_gradients(cfg: TrainConfig) -> dict[str, torch.Tensor]:
    grads: dict[str, torch.Tensor] = {}

    def capture(self, args, state, control, model=None, **kwargs):
        if state.global_step == 0:
            grads.update({k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None})

    ThroughputCallback.on_pre_optimizer_step = capture  # a callback every stage registers
    try:
        train_stage(cfg)
    finally:
        del ThroughputCallback.on_pre_optimizer_step
    return grads


if __name__ == "__main__":
    args = sys.argv[1:]
    for cfg_path, out in zip(args[::2], args[1::2]):
        grads = step_gradients(load_config(TrainConfig, cfg_path))
        if int(os.environ.get("RANK", "0")) == 0:
            torch.save(grads, out)
