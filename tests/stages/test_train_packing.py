"""One optimizer step over the same 8 samples gives the same gradients however they are batched:
padded 8x1, 4x2 or 1x8 (per-device batch x accumulation), packed, and on 2 ranks under torchrun
(the loss is the mean over every label token of the step, not a mean of means); and a packed
stage reports real-token throughput."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sicog.config import TrainConfig, load_config, save_config

from ._step_gradients import step_gradients
from .conftest import stage_config

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path, data, name, *overrides):
    """8 samples (image and text records), one optimizer step, no clipping, no length grouping."""
    text = f"{{path: '{data['text']}', weight: 0.5}}"
    path = stage_config(tmp_path, data, name, max_steps=1, save_steps=100, max_grad_norm=0.0)
    return path, [f"data.sources=[{{path: '{data['captions']}', image_folder: '{data['image_folder']}'}}, {text}]",
                  "data.num_samples=8", "data.group_by_length=false", *overrides]


def _batching(batch, accumulation):
    return [f"training.per_device_train_batch_size={batch}", f"training.gradient_accumulation_steps={accumulation}"]


PACKED = ["data.packing=true", "data.packing_tokens=160", "training.gradient_accumulation_steps=8"]


def _gap(grads, reference):
    assert grads.keys() == reference.keys() and len(reference) > 10
    scale = max(g.abs().max() for g in reference.values())
    return float(max((grads[k] - reference[k]).abs().max() for k in reference) / scale)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The data, and the gradients of its 8 samples in one padded micro-batch (the reference)."""
    from .conftest import write_tiny_dataset

    tmp = tmp_path_factory.mktemp("accumulation")
    data = write_tiny_dataset(tmp / "data")
    path, sets = _config(tmp, data, "b8x1", *_batching(8, 1))
    grads = step_gradients(load_config(TrainConfig, path, sets))
    return data, grads, json.loads((tmp / "b8x1" / "train_summary.json").read_text())


@pytest.mark.parametrize("batching", [_batching(4, 2), _batching(1, 8), PACKED], ids=["4x2", "1x8", "packed"])
def test_any_accumulation_and_packing_give_the_same_step(tmp_path, setup, batching):
    data, reference, reference_summary = setup
    path, sets = _config(tmp_path, data, "run", *batching)
    assert _gap(step_gradients(load_config(TrainConfig, path, sets)), reference) <= 1e-5
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())

    def total(s, rate):
        return s[rate] * s["seconds"]

    assert total(summary, "samples_per_s") == pytest.approx(8)  # every sample, once
    # the same real tokens and model FLOPs however the samples are batched: padding is not counted
    assert total(summary, "tokens_per_s") == pytest.approx(total(reference_summary, "tokens_per_s"))
    assert summary["flops_per_token"] == pytest.approx(reference_summary["flops_per_token"])
    assert reference_summary["flops_per_token"] > 0
    assert reference_summary["padding_share"] > 0 and 0 <= summary["data_share"] < 1
    if "data.packing=true" in batching:
        assert summary["padding_share"] == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_give_the_same_step_as_one(tmp_path, setup):
    """Each rank holds 4 of the samples (padded 2x2, or 2 packs): after the all-reduce the
    gradients are those of the 8 samples in one batch."""
    data, reference, _ = setup
    args = []
    for name, batching in (("ddp_padded", _batching(2, 2)), ("ddp_packed", PACKED)):
        path, sets = _config(tmp_path, data, name, *batching)
        save_config(load_config(TrainConfig, path, sets), tmp_path / f"{name}.yaml")
        args += [str(tmp_path / f"{name}.yaml"), str(tmp_path / f"{name}.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "tests.stages._step_gradients", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    for name in ("ddp_padded", "ddp_packed"):
        assert _gap(torch.load(tmp_path / f"{name}.pt"), reference) <= 1e-5, name
