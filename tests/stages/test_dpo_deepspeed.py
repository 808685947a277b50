"""`sicog dpo` under DeepSpeed ZeRO-2 / ZeRO-3 with two CPU ranks under torchrun (`pytest -k deepspeed`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import dpo_config
from .test_train import _changed_parts, _weights
from .test_train_deepspeed import _free_port

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("deepspeed")


@pytest.mark.deepspeed
@pytest.mark.parametrize("zero,reference", [("zero2", "precomputed"), ("zero3", "model")])
def test_dpo_deepspeed_two_ranks(tmp_path, tiny_pairs, zero, reference):
    from sicog.config import load_config
    from sicog.model.build import build_model
    from sicog.model.checkpoint import save_checkpoint
    from sicog.stages.dpo.config import DPOConfig

    path = dpo_config(tmp_path, tiny_pairs, f"dpo_{zero}", tunable_parts=["projector", "language_model"],
                      max_steps=2, save_steps=1, logging_steps=1, per_device_train_batch_size=2,
                      deepspeed=str(REPO / "configs" / "deepspeed" / f"{zero}.json"), dpo={"reference": reference})
    model, processor = build_model(load_config(DPOConfig, path).model, seed=0)
    save_checkpoint(model, processor, tmp_path / "init_ckpt", {"stage": "init"})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(_free_port())}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", env["MASTER_PORT"], "-m", "sicog", "dpo", str(path),
           "--set", "model.preset=null", "--set", f"model.checkpoint={tmp_path / 'init_ckpt'}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    out = tmp_path / f"dpo_{zero}"
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["reference"] == reference and summary["steps"] == 2
    assert summary["log_history"] and "rewards/accuracy" in summary["log_history"][0]
    # step 1: the policy is the reference on both ranks, whatever the partitioning
    first = json.loads((out / "checkpoint-1" / "trainer_state.json").read_text())["log_history"][0]
    assert abs(first["loss"] - 0.693147) < 1e-4 and abs(first["rewards/margin"]) < 1e-5
    assert summary["heldout_before"]["pairs"] == 4 and "rewards/accuracy" in summary["heldout_after"]
    # the final folder loads in stock transformers; the frozen vision tower came through unchanged
    assert _changed_parts(_weights(tmp_path / "init_ckpt"), _weights(out / "final")) == {"projector", "language_model"}
    assert any((out / "checkpoint-2").glob("global_step*"))
