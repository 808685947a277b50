"""Real DeepSpeed ZeRO-2 / ZeRO-3 training with two CPU ranks under torchrun (`pytest -k deepspeed`)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sicog.config import TrainConfig, load_config

from ._torchrun import free_port, run_torchrun
from .conftest import stage_config
from .test_train import _changed_parts, _weights, part_of_key

REPO = Path(__file__).resolve().parents[2]
RANK = str(Path(__file__).with_name("_sicog_rank.py"))  # `sicog` without the shm kernel
pytest.importorskip("deepspeed")


@pytest.mark.deepspeed
@pytest.mark.parametrize("zero", ["zero2", "zero3"])
def test_deepspeed_two_ranks(tmp_path, tiny_data, zero):
    from sicog.model.build import build_model
    from sicog.model.checkpoint import save_checkpoint

    init_cfg = load_config(TrainConfig, stage_config(tmp_path, tiny_data, "init"))
    model, processor = build_model(init_cfg.model, seed=0)
    save_checkpoint(model, processor, tmp_path / "init_ckpt", {"stage": "init"})
    before = _weights(tmp_path / "init_ckpt")

    cfg = stage_config(tmp_path, tiny_data, f"ds_{zero}", tunable_parts=["projector", "language_model"],
                       max_steps=3, save_steps=2, deepspeed=str(REPO / "configs" / "deepspeed" / f"{zero}.json"))
    proc = run_torchrun([RANK, "train", str(cfg), "--set", "model.preset=null",
                         "--set", f"model.checkpoint={tmp_path / 'init_ckpt'}"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    final = tmp_path / f"ds_{zero}" / "final"
    assert (final / "sicog_meta.json").is_file()
    after = _weights(final)
    # the frozen vision tower survives the (ZeRO-3: gathered) save unchanged; the rest trained
    assert _changed_parts(before, after) == {"projector", "language_model"}
    assert any(part_of_key(k) == "vision_tower" for k in after)  # (weights loaded by stock transformers)
    # resume state was written by DeepSpeed for both ranks
    assert any((tmp_path / f"ds_{zero}" / "checkpoint-2").glob("global_step*"))


@pytest.mark.deepspeed
def test_deepspeed_launcher(tmp_path, tiny_data):
    """The deepspeed launcher (it passes --local_rank before the subcommand) running `sicog train`."""
    import shutil

    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or shutil.which("deepspeed")
    if launcher is None:
        pytest.skip("deepspeed launcher not on PATH")
    cfg = stage_config(tmp_path, tiny_data, "ds_launcher", tunable_parts=["projector"], max_steps=2,
                       deepspeed=str(REPO / "configs" / "deepspeed" / "zero2.json"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [launcher, "--num_accelerators", "2", "--master_port", str(free_port()), RANK, "train", str(cfg)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (tmp_path / "ds_launcher" / "final" / "sicog_meta.json").is_file()
