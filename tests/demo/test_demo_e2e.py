"""End to end: `sicog demo --preset smoke`, killed during sampling, resumed, then extended to 2 rounds.

One test on purpose (the loop is the expensive part): it checks the acceptance points of the loop
issue that need a real run — the smoke demo completes and writes the report schema; a SIGKILL
during sampling and a re-run finish without redoing completed steps (the manifests show it);
`rounds=2` re-uses round 1 and reports accuracy round by round.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _manifest(run: Path, step: str) -> dict:
    return json.loads((run / "manifests" / f"{step.replace('/', '__')}.json").read_text())


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "pipeline_log.jsonl").read_text().splitlines()]


def test_smoke_demo_kill_resume_and_rounds(tmp_path):
    out = tmp_path / "demo"
    run = out / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SICOG_CACHE_DIR": str(tmp_path / "cache")}
    # small sampling batches, so that the kill lands between two of them
    cmd = [sys.executable, "-m", "sicog", "demo", "--preset", "smoke", "--out", str(out), "--seed", "1",
           "--set", "sampling.captions.batch_size=2"]
    part = run / "r1" / "sample_captions" / "candidates.jsonl.parts" / "rank-0.jsonl"

    # 1. start, and SIGKILL the whole process group once caption sampling has written some items
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "r1/sample_captions: running" in line:
            deadline = time.time() + 300
            while time.time() < deadline and not (part.is_file() and part.read_text().count("\n") >= 2):
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    done_before_kill = {json.loads(line)["id"] for line in part.read_text().splitlines() if line.strip()}
    assert done_before_kill
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-30:])
    assert _manifest(run, "r1/sample_captions")["status"] == "pending"
    warm = _manifest(run, "r1/warmup_perception")
    assert warm["status"] == "complete"
    n_events = len(_events(run))

    # 2. the same command again finishes; completed steps are skipped, sampling resumes
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    resumed = {e["step"]: e["status"] for e in _events(run)[n_events:]}
    for step in ("standins", "align", "sft_base", "evaluate_base", "r1/warmup_perception"):
        assert resumed[step] == "skipped", (step, resumed)
    assert resumed["r1/sample_captions"] == "resumed"
    assert _manifest(run, "r1/warmup_perception")["finished_at"] == warm["finished_at"]
    sample = _manifest(run, "r1/sample_captions")
    assert sample["status"] == "complete" and sample["attempts"] == 2
    n_images = sum(1 for _ in open(out / "world" / "unlabeled_images.jsonl"))
    ids = [json.loads(line)["id"] for line in open(run / "r1" / "sample_captions" / "candidates.jsonl")]
    assert len(ids) == len(set(ids)) == n_images == sample["counts"]["items"]  # every item exactly once
    sample_log = (run / "r1" / "sample_captions" / "log.txt").read_text()
    earlier = [int(n) for n in re.findall(r"\((\d+) done earlier", sample_log)]
    assert earlier[-1] >= len(done_before_kill) > 0  # the resumed run did not sample them again
    resume_seconds = time.time() - t0

    # 3. report.json has the documented schema
    report = json.loads((out / "report.json").read_text())
    assert report["preset"] == "smoke" and report["seed"] == 1 and report["wall_seconds"] > 0
    # the four arms of the comparison, plus the post-training arms of the smoke preset's DPO step
    assert set(report["arms"]) == {"base", "sicog", "uncurated", "oracle", "sicog_dpo", "base_dpo"}
    assert {(c["arm"], c["against"]) for c in report["comparisons"]} >= {("sicog", "base"), ("sicog", "uncurated")}
    for name in ("base", "sicog", "uncurated", "oracle"):
        arm = report["arms"][name]
        assert len(arm["benchmark"]["ci95"]) == 2
        assert (out / arm["checkpoint"] / "config.json").is_file(), name
        assert 0.0 <= arm["benchmark"]["accuracy"] <= 1.0 and arm["benchmark"]["n"] > 0
        assert arm["benchmark"]["per_category"]
        # the demo scores multiple choice by likelihood first and also by generation (both in the report)
        assert arm["benchmark"]["scoring"] == "likelihood"
        assert set(arm["benchmark"]["accuracy_by_scoring"]) == {"likelihood", "generate"}
        assert arm["benchmark"]["accuracy_by_scoring"]["likelihood"] == arm["benchmark"]["accuracy"]
        assert {"object_recall", "hallucination_rate"} <= set(arm["captions"])
    names = [s["name"] for s in report["steps"]]
    for word in ("warmup", "sample", "curate", "align", "pretrain", "sft", "evaluate"):
        assert any(word in n for n in names), word
    assert all(isinstance(s["seconds"], (int, float)) for s in report["steps"])
    assert report["curation"]["round1"]["captions"]["stats"]
    assert any(r["labels"] == "greedy" for r in report["label_quality"]["rows"])
    md = (out / "report.md").read_text()
    assert "departs from the real recipe" in md
    assert "scored by **likelihood**" in md and "| generate % |" in md
    for png in ("accuracy.png", "accuracy_per_category.png", "curation_scores.png"):
        assert (out / png).stat().st_size > 1000, png

    # 4. rounds=2: round 1 is reused, round 2 runs, the report shows accuracy round by round
    done = subprocess.run([*cmd, "--set", "rounds=2"], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    by_round = {(r["round"], r["arm"]): r for r in report["rounds"]}
    assert {(0, "base"), (1, "sicog"), (2, "sicog")} <= set(by_round)
    assert all(by_round[k]["accuracy"] is not None for k in ((0, "base"), (1, "sicog"), (2, "sicog")))
    assert "Round by round" in (out / "report.md").read_text()
    assert _manifest(run, "r1/warmup_perception")["finished_at"] == warm["finished_at"]
    print(f"resumed smoke demo: {resume_seconds:.0f} s")
