"""training_scripts/stage15_pretrain.sh: TEXT_ONLY_RATIO is a share of samples, as in the pipeline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sicog.config import TrainConfig, load_config
from sicog.data.dataset import source_weights
from tests.stages._sampling import REPO
from tests.stages._scripts import run_from_copy

ENV = {"EXPERIMENT_NAME": "exp", "DATA_PATH": "data/curated.jsonl", "IMAGE_FOLDER": "data/images",
       "VISION_TOWER": "models/clip", "LLM_CKPT_DIR": "models/qwen2", "DEEPSPEED_CONFIG": "none",
       "MM_PROJECTOR_CHECKPOINT": "ckpt/stage1/mm_projector.safetensors"}


def _run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the script with PYTHON pointing at a stub that records its argv (one per line)."""
    stub, record = tmp_path / "python-stub", tmp_path / "argv.txt"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    stub.chmod(0o755)
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": str(stub),
            "OUTPUT_ROOT": str(tmp_path / "out"), **ENV, **env}
    res = subprocess.run(["bash", str(REPO / "training_scripts" / "stage15_pretrain.sh")], env=full,
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    return res, record.read_text().splitlines() if record.exists() else []


def _config(argv: list[str]) -> TrainConfig:
    args = argv[argv.index("train") + 1:]
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    return load_config(TrainConfig, args[0], overrides)


def test_text_only_ratio_is_the_share_of_samples(tmp_path):
    res, argv = _run(tmp_path, TEXT_DATA_PATH="data/text.jsonl")
    assert res.returncode == 0, res.stderr
    cfg = _config(argv)
    curated, text = cfg.data.sources
    assert (curated.path, curated.weight, curated.share) == ("data/curated.jsonl", 1.0, None)
    assert (text.path, text.share) == ("data/text.jsonl", 0.1)  # the default: 10% of the samples
    weights = source_weights(cfg.data.sources)
    assert weights[1] / sum(weights) == pytest.approx(0.1, rel=1e-12)

    res, argv = _run(tmp_path, TEXT_DATA_PATH="data/text.jsonl", TEXT_ONLY_RATIO="0.25")
    assert res.returncode == 0, res.stderr
    assert _config(argv).data.sources[1].share == 0.25
    res, argv = _run(tmp_path)  # no text-only data: the curated file alone
    assert [s.path for s in _config(argv).data.sources] == ["data/curated.jsonl"]


def test_the_old_text_data_weight_is_refused_with_its_replacement(tmp_path):
    (tmp_path / "argv.txt").unlink(missing_ok=True)
    res, argv = _run(tmp_path, TEXT_DATA_PATH="data/text.jsonl", TEXT_DATA_WEIGHT="0.1")
    assert res.returncode == 2 and argv == []
    assert "TEXT_DATA_WEIGHT was replaced by TEXT_ONLY_RATIO, the share of samples" in res.stderr


def test_dpo_script_is_the_papers_setting_with_env_overrides(tmp_path):
    from sicog.stages.dpo.config import DPOConfig

    stub, record = tmp_path / "python-stub", tmp_path / "argv.txt"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    stub.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": str(stub), "OUTPUT_ROOT": str(tmp_path / "out"),
           "EXPERIMENT_NAME": "exp", "PREV_STAGE_CHECKPOINT": "ckpt/sft/final", "PAIRS_PATH": "pairs/train.jsonl",
           "IMAGE_FOLDER": "data/images", "HELDOUT_PATH": "pairs/heldout.jsonl", "DPO_BETA": "0.2"}
    res = subprocess.run(["bash", str(REPO / "training_scripts" / "dpo.sh")], env=env, capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    args = record.read_text().splitlines()
    args = args[args.index("dpo") + 1:]
    cfg = load_config(DPOConfig, args[0], [args[i + 1] for i, a in enumerate(args) if a == "--set"])
    assert (cfg.dpo.loss_type, cfg.dpo.beta, cfg.dpo.sft_weight, cfg.dpo.reference) == ("sigmoid", 0.2, 1.0, "model")
    assert (cfg.model.checkpoint, cfg.dpo.heldout) == ("ckpt/sft/final", "pairs/heldout.jsonl")
    assert cfg.data.sources[0].path == "pairs/train.jsonl" and cfg.training.deepspeed.endswith("zero3.json")
    del env["PAIRS_PATH"]  # a missing required variable fails fast, naming it
    res = subprocess.run(["bash", str(REPO / "training_scripts" / "dpo.sh")], env=env, capture_output=True,
                         text=True, cwd=tmp_path, timeout=60)
    assert res.returncode != 0 and "PAIRS_PATH" in res.stderr


@pytest.mark.parametrize("script", ["stage0_warmup.sh", "stage1_align.sh", "stage15_pretrain.sh", "stage2_sft.sh",
                                    "dpo.sh"])
def test_the_stage_scripts_use_the_projects_venv_when_present(tmp_path, script):
    env = {**ENV, "PREV_STAGE_CHECKPOINT": "ckpt/prev", "PAIRS_PATH": "pairs.jsonl", "OUTPUT_ROOT": "out"}
    for venv in (True, False):
        res, interpreter, argv = run_from_copy(tmp_path, f"training_scripts/{script}", env, venv)
        assert res.returncode == 0, res.stderr
        assert interpreter == ("venv" if venv else "path") and argv[:2] == ["-m", "sicog.pipeline.launch"]
