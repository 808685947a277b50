"""quality_evaluation/*.sh: env vars -> `sicog curate` flags; 2 ranks under torchrun == 1 rank."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sicog.stages.curation.runner import CurateConfig, run_curation
from tests.stages.test_curate import caption_records, read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "quality_evaluation" / "caption_quality_eval.sh",
           ROOT / "quality_evaluation" / "reasoning_quality_eval.sh"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAW_DATASET", "OUTPUT_DIR", "ENCODER", "MODEL_NAME_OR_PATH", "THRESHOLD",
                        "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **extra)
    return env


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_require_their_variables(script, tmp_path):
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    r = subprocess.run(["bash", str(script)], env=_env(), capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode != 0 and "RAW_DATASET" in r.stderr
    r = subprocess.run(["bash", str(script)], env=_env(RAW_DATASET="x.jsonl"), capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode != 0 and "OUTPUT_DIR" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_caption_script_two_ranks_under_torchrun_matches_one_rank(tmp_path):
    src = write_jsonl(tmp_path / "cands.jsonl", caption_records())
    out = tmp_path / "run"
    r = subprocess.run(["bash", str(SCRIPTS[0])], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env=_env(RAW_DATASET=str(src), OUTPUT_DIR=str(out), ENCODER="minilm", THRESHOLD="0.5",
                                SEED="7", NPROC_PER_NODE="2", MASTER_PORT=str(_free_port()),
                                EXTRA_ARGS="--no-progress --device cpu"))
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads((out / "report" / "stats.json").read_text())
    assert stats["world_size"] == 2 and stats["threshold"] == 0.5 and stats["seed"] == 7
    assert len(stats["throughput"]["per_rank"]) == 2
    from sicog.stages.curation.encoders import load_encoder

    ref = tmp_path / "ref"
    run_curation(CurateConfig(candidates=str(src), out=str(ref / "curated.jsonl"), task="caption",
                              threshold=0.5, seed=7, progress=False),
                 encoder=load_encoder("minilm", device="cpu"))
    two, one = read_jsonl(out / "curated.jsonl"), read_jsonl(ref / "curated.jsonl")
    assert [r["id"] for r in two] == [r["id"] for r in one]  # input order, each id once
    for a, b in zip(two, one):
        assert (a["chosen_index"], a["rejected_index"]) == (b["chosen_index"], b["rejected_index"])
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    assert not (out / "curated.jsonl.parts").exists()
    pairs = read_jsonl(out / "pairs.jsonl")  # `sicog pairs` on the curated records
    assert pairs and {p["id"] for p in pairs} <= {r["id"] for r in two}
