"""DeepSpeed ZeRO-2 / ZeRO-3 `arch: uhd` training on two CPU ranks (`pytest -k deepspeed`).

The ranks see different slice counts and text-only batches in the same step: every rank must
still make the same module calls (ZeRO-3 gathers weights collectively per call).
"""

from pathlib import Path

import pytest
from safetensors.torch import load_file

from sicog.config import TrainConfig, load_config

from ._torchrun import run_torchrun
from .test_train_uhd import _init_checkpoint, changed_parts, uhd_data, uhd_stage, uhd_weights  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
RANK = str(Path(__file__).with_name("_sicog_rank.py"))  # `sicog` without the shm kernel
pytest.importorskip("deepspeed")


@pytest.mark.deepspeed
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_deepspeed_uhd_two_ranks(tmp_path, uhd_data, zero):  # noqa: F811
    init = _init_checkpoint(tmp_path, uhd_data)
    before = uhd_weights(init)
    cfg = uhd_stage(tmp_path, uhd_data, f"uhd_{zero}", tunable_parts=["projector", "language_model"],
                    per_device_train_batch_size=2, max_steps=3, save_steps=2,
                    deepspeed=str(REPO / "configs" / "deepspeed" / f"{zero}.json"))
    load_config(TrainConfig, cfg)  # a valid stage config
    proc = run_torchrun([RANK, "train", str(cfg), "--set", "model.preset=null",
                         "--set", f"model.checkpoint={init}"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    final = tmp_path / f"uhd_{zero}" / "final"
    after = uhd_weights(final)
    assert changed_parts(before, after) == {"projector", "language_model"}
    # the (ZeRO-3: gathered) weights in the file are the ones that load (transformers may write them
    # under its legacy key names, so tensors are matched by shape and exact sum)
    saved = load_file(final / "model.safetensors")
    fingerprint = lambda sd: sorted((tuple(v.shape), float(v.double().sum())) for v in sd.values())  # noqa: E731
    assert fingerprint(saved) == fingerprint(after)
    assert any((tmp_path / f"uhd_{zero}" / "checkpoint-2").glob("global_step*"))
