"""training_scripts/stage15_pretrain.sh: TEXT_ONLY_RATIO is a share of samples, as in the pipeline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sicog.config import TrainConfig, load_config
from sicog.data.dataset import source_weights
from tests.stages._sampling import REPO

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
