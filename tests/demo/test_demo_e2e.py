"""End to end: `sicog demo --preset smoke`, killed during the DPO step, resumed, then extended to 2 rounds.

One test on purpose (the loop is the expensive part): it checks the acceptance points that need a
real run - the smoke demo completes and writes the report schema with every arm (the DPO arms
included); a SIGKILL of the whole process group while `r1/dpo_sicog` trains and a re-run of the
same command finish without redoing any completed step, the DPO step continuing from its last
checkpoint (the manifests, the event log and the step's checkpoints show it); `rounds=2` re-uses
round 1 and reports accuracy round by round, with the round monitor of each round. (A kill during sampling: tests/stages/test_sample_scale.py.)

The preset's own budgets, with less work where no check depends on it: the stand-ins come from the
test run's shared cache (as a second run on one machine finds them), and the warm-up of captions,
stage-2 SFT and DPO train half their steps (DPO still saves a checkpoint every 5 of its 10 steps). The
reasoning warm-up keeps its 90 steps: with fewer, no CoT ends in an answer and DPO gets no pairs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ARMS = {"base", "sicog", "uncurated", "uncurated_valid", "oracle", "oracle_noised", "annotated", "base_long",
        "sicog_dpo", "base_dpo"}
DPO_STEPS = 10
SETS = ["stages.warmup_perception.set.training.max_steps=15", "stages.sft.set.training.max_steps=10",
        f"post_training.dpo.set.training.max_steps={DPO_STEPS}"]


def _manifest(run: Path, step: str) -> dict:
    return json.loads((run / "manifests" / f"{step.replace('/', '__')}.json").read_text())


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "pipeline_log.jsonl").read_text().splitlines()]


def _whole_json(path: Path) -> bool:
    """`path` exists and holds whole JSON: a checkpoint's trainer_state.json is written last, but not
    atomically, and a kill while it is half written leaves a checkpoint the resume rightly ignores."""
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _start_and_kill_during(cmd: list[str], env: dict, step: str, ready: Path) -> list[str]:
    """Run `cmd` in its own process group and SIGKILL the group once `step` is running and the
    JSON file `ready` is whole; returns the output lines (read on a thread, so the pipe never blocks it)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    seen: list[str] = []
    running = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            seen.append(line)
            if f"{step}: running" in line:
                running.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.time() + 1200  # eight arms before the DPO step, on a shared 2-core machine
    while time.time() < deadline and proc.poll() is None and not (running.is_set() and _whole_json(ready)):
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    reader.join(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-30:])
    return seen


def test_smoke_demo_kill_during_dpo_resume_and_rounds(tmp_path, smoke_standins_cache):
    out = tmp_path / "demo"
    run = out / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SICOG_CACHE_DIR": str(smoke_standins_cache)}
    cmd = [sys.executable, "-m", "sicog", "demo", "--preset", "smoke", "--out", str(out), "--seed", "1",
           *(a for s in SETS for a in ("--set", s))]
    dpo = run / "r1" / "dpo_sicog"
    first_checkpoint = dpo / "checkpoint-5" / "trainer_state.json"  # written last of its checkpoint

    # 1. start, and SIGKILL the whole process group once the DPO step has saved its first checkpoint
    _start_and_kill_during(cmd, env, "r1/dpo_sicog", first_checkpoint)
    assert _manifest(run, "r1/dpo_sicog")["status"] == "pending"
    assert not (dpo / "final").exists()
    before_kill = [e["step"] for e in _events(run)]  # the steps that completed
    assert {"standins", "sft_base", "r1/sft_sicog", "r1/evaluate_oracle", "r1/pairs"} <= set(before_kill)
    assert _manifest(run, "standins")["counts"]["cache_hit"] is True  # the test run's shared stand-ins
    finished = {name: _manifest(run, name)["finished_at"] for name in before_kill}

    # 2. the same command again finishes; no completed step runs again, the DPO step resumes
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rerun = {e["step"]: e["status"] for e in _events(run)[len(before_kill):]}
    assert {name: rerun[name] for name in before_kill} == {name: "skipped" for name in before_kill}
    assert {name: _manifest(run, name)["finished_at"] for name in before_kill} == finished
    assert rerun["r1/dpo_sicog"] == "resumed" and rerun["r1/dpo_base"] == "ran"
    manifest = _manifest(run, "r1/dpo_sicog")
    assert manifest["status"] == "complete" and manifest["attempts"] == 2
    log = (dpo / "log.txt").read_text()
    (resumed_at,) = [int(n) for n in re.findall(r"resuming from \S+/checkpoint-(\d+)", log)]
    assert resumed_at >= 5
    summary = json.loads((dpo / "train_summary.json").read_text())
    # the rerun trained only the steps after its checkpoint
    assert summary["global_step"] == DPO_STEPS and summary["steps"] == DPO_STEPS - resumed_at
    assert summary["heldout_before"]["rewards/accuracy"] == 0.5  # policy = reference: every pair a tie
    resume_seconds = time.time() - t0

    # 3. report.json has the documented schema
    report = json.loads((out / "report.json").read_text())
    assert report["preset"] == "smoke" and report["seed"] == 1 and report["wall_seconds"] > 0
    # the arms of the comparison and its controls, plus the post-training arms of the smoke preset's DPO step
    assert set(report["arms"]) == ARMS
    assert report["arms"]["sicog_dpo"]["dpo"]["steps"] == DPO_STEPS  # the whole stage, not the resumed part
    assert {(c["arm"], c["against"]) for c in report["comparisons"]} >= {
        ("sicog", "base"), ("sicog", "uncurated"), ("sicog", "uncurated_valid"), ("oracle", "oracle_noised"),
        ("sicog", "annotated"), ("sicog", "base_long")}
    for name in ("base", "sicog", "uncurated", "uncurated_valid", "oracle", "oracle_noised", "annotated", "base_long"):
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
        # each question subtype apart, with its interval, and the shuffled-image control of every arm
        subs = arm["benchmark"]["per_subcategory"]
        assert subs and all(len(v["ci95"]) == 2 and v["n"] > 0 for v in subs.values())
        assert set(arm["benchmark"]["per_subcategory_shuffled_images"]) == set(subs)
    # the controls' data: the noised truth makes as many answers wrong as the curated labels get wrong
    # (of those it can: the smoke world also asks questions other than counts), uncurated_valid takes
    # the items curation kept; base_long is stage 2 alone with its own budget
    for task in ("captions", "reasoning"):
        noised = _manifest(run, f"r1/noised_{task}_like_curated")["counts"]   # wrong values drawn like theirs
        assert abs(noised["noised"] + noised["unnoisable"] - noised["share"] * noised["records"]) <= 0.51  # share: 4 digits
        assert noised["values_from"] == noised["share_from"]
        valid = _manifest(run, f"r1/uncurated_{task}_kept_parseable")["counts"]
        assert valid["records"] <= valid["kept_items"]
    assert _manifest(run, "r1/sft_base_long")["counts"]["steps"] == 35
    assert not (run / "r1" / "pretrain_base_long").exists()
    names = [s["name"] for s in report["steps"]]
    for word in ("warmup", "sample", "curate", "align", "pretrain", "sft", "evaluate"):
        assert any(word in n for n in names), word
    assert all(isinstance(s["seconds"], (int, float)) for s in report["steps"])
    assert report["curation"]["round1"]["captions"]["stats"]
    rows = {(r["task"], r["labels"]): r for r in report["label_quality"]["rows"] if r["round"] == 1}
    assert ("captions", "greedy") in rows
    # the uncurated arm trains on as many items as curation kept; "random candidate" covers every item
    for task in ("captions", "reasoning"):
        kept = rows.get((task, "curated, kept items"), {"items": 0})["items"]  # no row when curation kept none
        assert rows[(task, "uncurated arm")]["items"] == kept
        assert rows[(task, "random candidate")]["items"] >= rows[(task, "uncurated arm")]["items"]
    md = (out / "report.md").read_text()
    assert "departs from the real recipe" in md
    assert "scored by **likelihood**" in md and "| generate % |" in md and "per question subtype" in md
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
    # the round monitor of both rounds: the teacher on the probe drawn apart from the world, collapse signals
    monitor = {m["round"]: m for m in report["monitor"]}
    assert set(monitor) == {1, 2} and monitor[2]["accuracy"] == by_round[(2, "sicog")]["accuracy"]
    for m in monitor.values():
        assert m["teacher_probe"]["items"] == 24 and set(m["curated"]) == {"captions", "reasoning"}
    assert monitor[1]["curated"]["reasoning"]["copied_share"] is None
    assert monitor[2]["curated"]["reasoning"]["labels"] == 0 or monitor[2]["curated"]["reasoning"]["copied_share"] is not None
    assert "## Round monitor" in (out / "report.md").read_text()
    assert _manifest(run, "r1/warmup_perception")["finished_at"] == finished["r1/warmup_perception"]
    print(f"resumed smoke demo: {resume_seconds:.0f} s")
