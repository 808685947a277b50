"""`sicog dpo` under DeepSpeed ZeRO-2 and ZeRO-3 with two CPU ranks under torchrun (`pytest -k deepspeed`).

Both stages run in one launch (tests/stages/_dpo_in_sequence.py): starting two ranks costs more than
training the tiny model. Each stage's DeepSpeed checkpoint shows which ZeRO stage it ran under.
"""

import json
from pathlib import Path

import pytest
import yaml

from ._torchrun import run_torchrun
from .conftest import dpo_config
from .test_train import _changed_parts, _weights

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("deepspeed")
# ZeRO stage -> the reference the test gives it (ZeRO-3 cannot precompute: its weights are partitioned)
ZERO_REFERENCES = {"zero2": "precomputed", "zero3": "model"}


@pytest.mark.deepspeed
def test_dpo_deepspeed_zero2_and_zero3_two_ranks(tmp_path, tiny_pairs):
    from sicog.config import load_config
    from sicog.model.build import build_model
    from sicog.model.checkpoint import save_checkpoint
    from sicog.stages.dpo.config import DPOConfig

    init = tmp_path / "init_ckpt"
    configs = []
    for zero, reference in ZERO_REFERENCES.items():
        path = dpo_config(tmp_path, tiny_pairs, f"dpo_{zero}", tunable_parts=["projector", "language_model"],
                          max_steps=2, save_steps=2, logging_steps=1, per_device_train_batch_size=2,
                          deepspeed=str(REPO / "configs" / "deepspeed" / f"{zero}.json"), dpo={"reference": reference})
        cfg = yaml.safe_load(path.read_text())
        if not init.exists():
            model, processor = build_model(load_config(DPOConfig, path).model, seed=0)
            save_checkpoint(model, processor, init, {"stage": "init"})
        cfg["model"] = {"checkpoint": str(init)}  # a stock checkpoint, as sicog run passes it
        path.write_text(yaml.safe_dump(cfg))
        configs.append(str(path))
    proc = run_torchrun([str(REPO / "tests" / "stages" / "_dpo_in_sequence.py"), *configs], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]

    before = _weights(init)
    for zero, reference in ZERO_REFERENCES.items():
        out = tmp_path / f"dpo_{zero}"
        summary = json.loads((out / "train_summary.json").read_text())
        assert summary["reference"] == reference and summary["steps"] == summary["global_step"] == 2
        # step 1: the policy is the reference on both ranks, whatever the partitioning
        first = summary["log_history"][0]
        assert first["step"] == 1 and "rewards/accuracy" in first
        assert abs(first["loss"] - 0.693147) < 1e-4 and abs(first["rewards/margin"]) < 1e-5, zero
        assert summary["heldout_before"]["pairs"] == 4 and "rewards/accuracy" in summary["heldout_after"]
        # resume state for both ranks, in the layout of the stage that ran: ZeRO-3 partitions the
        # weights themselves (one model-state file per rank), ZeRO-2 only the optimizer state
        (state,) = (out / "checkpoint-2").glob("global_step*")
        ranks_with_weights = {p.name for p in state.glob("zero_pp_rank_*_mp_rank_00_model_states.pt")}
        assert len(ranks_with_weights) == (2 if zero == "zero3" else 0), (zero, sorted(p.name for p in state.iterdir()))
        assert len(list(state.glob("*zero_pp_rank_*_optim_states.pt"))) == 2
        # the final folder loads in stock transformers; the frozen vision tower came through unchanged
        assert _changed_parts(before, _weights(out / "final")) == {"projector", "language_model"}, zero
