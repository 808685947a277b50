"""End to end: a `sicog run` killed during a warm-up stage and resumed gives the uninterrupted results.

The smoke demo runs twice with the same settings, the perception warm-up saving a checkpoint every
few steps: A uninterrupted; B SIGKILLed (the whole process group) as soon as
`r1/warmup_perception/checkpoint-*` is complete, then re-run to completion, resuming the warm-up
from that checkpoint. The sampled candidates (which the warm-up model writes) and the report's
figures of every arm must be identical: an exact resume changes nothing. Both runs share the
stand-in cache, as runs of one machine do (the test run's, built once). Less work than the preset
where no check depends on it: two arms, no label-quality table, no DPO, and the steps after the
sampling train a third of the reasoning warm-up's steps and half of SFT's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SETS = ["stages.warmup_perception.set.training.save_steps=5",  # of 30 steps: a checkpoint early on
        "arms=[base, sicog]", "label_quality=false",
        "post_training.method=none",  # resume of the DPO step: tests/demo/test_demo_e2e.py (its own kill test)
        "stages.warmup_reasoning.set.training.max_steps=30", "stages.sft.set.training.max_steps=10"]
WARMUP = "r1/warmup_perception"


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "sicog", "demo", "--preset", "smoke", "--out", str(out), "--seed", "1",
            *(a for s in SETS for a in ("--set", s))]


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "pipeline_log.jsonl").read_text().splitlines()]


def _figures(out: Path) -> dict:
    """Every arm's accuracy, per-category accuracy, caption object recall and hallucination."""
    report = json.loads((out / "report.json").read_text())
    return {name: {"accuracy": arm["benchmark"]["accuracy"], "per_category": arm["benchmark"]["per_category"],
                   "object_recall": arm["captions"]["object_recall"],
                   "hallucination_rate": arm["captions"]["hallucination_rate"]}
            for name, arm in report["arms"].items()}


def _candidates(out: Path, task: str) -> list[dict]:
    """The sampled candidates, with the run's own folder written as OUT (the runs live apart)."""
    text = (out / "run" / "r1" / f"sample_{task}" / "candidates.jsonl").read_text()
    return [json.loads(line) for line in text.replace(str(out), "OUT").splitlines() if line.strip()]


def _complete_checkpoint(folder: Path) -> Path | None:
    """The first checkpoint whose trainer_state.json (written last, not atomically) is whole JSON."""
    for state in sorted(folder.glob("checkpoint-*/trainer_state.json")):
        try:
            json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        return state.parent
    return None


def test_resume_during_warmup_changes_nothing(tmp_path, smoke_standins_cache):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "SICOG_CACHE_DIR": str(smoke_standins_cache)}
    a, b = tmp_path / "a", tmp_path / "b"

    # A: uninterrupted
    done = subprocess.run(_cmd(a), capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # B: killed as soon as the warm-up has a complete checkpoint
    warm = b / "run" / WARMUP
    with open(tmp_path / "b_killed.log", "w") as log:
        proc = subprocess.Popen(_cmd(b), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.time() + 1200
        while time.time() < deadline and proc.poll() is None and _complete_checkpoint(warm) is None:
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    killed_at = _complete_checkpoint(warm)
    assert killed_at is not None and proc.returncode == -signal.SIGKILL, \
        (tmp_path / "b_killed.log").read_text()[-3000:]
    assert not (warm / "final").exists(), "the kill came after the warm-up finished: nothing was resumed"
    n_events = len(_events(b / "run"))

    # B again: the warm-up resumes from its checkpoint, everything after it runs
    done = subprocess.run(_cmd(b), capture_output=True, text=True, env=env, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    statuses = {e["step"]: e["status"] for e in _events(b / "run")[n_events:]}
    assert statuses[WARMUP] == "resumed" and statuses["sft_base"] == "skipped", statuses
    assert "resuming from" in (warm / "log.txt").read_text()

    fig_a, fig_b = _figures(a), _figures(b)
    assert set(fig_a) == {"base", "sicog"}
    for task in ("captions", "reasoning"):
        cand_a, cand_b = _candidates(a, task), _candidates(b, task)
        differ = [x["id"] for x, y in zip(cand_a, cand_b) if x != y]
        assert cand_a == cand_b, (f"{task}: {len(differ)} of {len(cand_a)} items sampled differently after a "
                                  f"resume from {killed_at.name} (first: {differ[:3]}); figures A {fig_a} B {fig_b}")
    assert fig_a == fig_b
    print(f"resumed from {killed_at.name}; figures: {json.dumps(fig_a, sort_keys=True)}")
