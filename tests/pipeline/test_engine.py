"""The resumable step engine: skip when up to date, redo on changed inputs/params, resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sicog.pipeline.engine import Engine
from sicog.pipeline.step import Step, StepFailed


def _copy_upper(src: str, dst: str, calls: list):
    def action(step, engine):
        calls.append(step.name)
        text = Path(src).read_text()
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        Path(dst).write_text(text.upper())
        return {"chars": len(text)}

    return action


def _chain(tmp_path: Path, calls: list, params_b: dict | None = None) -> list[Step]:
    src = tmp_path / "in.txt"
    a_out, b_out = tmp_path / "w" / "a" / "out.txt", tmp_path / "w" / "b" / "out.txt"
    return [
        Step("a", "data", {"src": str(src)}, {"out": str(a_out)}, {"p": 1},
             _copy_upper(str(src), str(a_out), calls), str(a_out.parent)),
        Step("r1/b", "data", {"src": str(a_out)}, {"out": str(b_out)}, params_b or {"p": 2},
             _copy_upper(str(a_out), str(b_out), calls), str(b_out.parent)),
    ]


def test_runs_then_skips_then_redoes_changed(tmp_path):
    (tmp_path / "in.txt").write_text("hello")
    calls: list = []
    engine = Engine(tmp_path / "w", echo=lambda m: None)
    assert [r.status for r in engine.run(_chain(tmp_path, calls))] == ["ran", "ran"]
    manifest = json.loads((tmp_path / "w" / "manifests" / "r1__b.json").read_text())
    assert manifest["status"] == "complete" and manifest["counts"] == {"chars": 5}
    assert manifest["inputs"]["src"]["fingerprint"] and manifest["outputs"]["out"]["fingerprint"]
    assert {"git_commit", "started_at", "finished_at", "seconds", "params"} <= set(manifest)

    calls.clear()
    assert [r.status for r in engine.run(_chain(tmp_path, calls))] == ["skipped", "skipped"]
    assert calls == []

    # a changed parameter redoes only that step
    assert [r.status for r in engine.run(_chain(tmp_path, calls, {"p": 3}))] == ["skipped", "ran"]
    assert calls == ["r1/b"]

    # a changed input redoes the step that reads it, and everything whose inputs then change
    calls.clear()
    (tmp_path / "in.txt").write_text("world!")
    assert [r.status for r in engine.run(_chain(tmp_path, calls, {"p": 3}))] == ["ran", "ran"]
    assert (tmp_path / "w" / "b" / "out.txt").read_text() == "WORLD!"

    # an output edited behind the engine's back is rebuilt
    calls.clear()
    (tmp_path / "w" / "b" / "out.txt").write_text("tampered")
    assert [r.status for r in engine.run(_chain(tmp_path, calls, {"p": 3}))] == ["skipped", "ran"]
    log = [json.loads(line) for line in (tmp_path / "w" / "pipeline_log.jsonl").read_text().splitlines()]
    assert [e["status"] for e in log[-2:]] == ["skipped", "ran"]


def test_interrupted_step_resumes_with_its_partial_output(tmp_path):
    (tmp_path / "in.txt").write_text("abc")
    work = tmp_path / "w"
    part = work / "slow" / "part.txt"
    out = work / "slow" / "out.txt"
    seen = []

    def slow(step, engine):
        seen.append(part.exists())
        if not part.exists():
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_text("half")
            raise KeyboardInterrupt  # killed half-way
        out.write_text(part.read_text() + " done")
        return {}

    steps = [Step("slow", "sample", {"src": str(tmp_path / "in.txt")}, {"out": str(out)}, {}, slow,
                  str(part.parent))]
    engine = Engine(work, echo=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        engine.run(steps)
    assert json.loads((work / "manifests" / "slow.json").read_text())["status"] == "pending"
    results = engine.run(steps)
    assert results[0].status == "resumed" and seen == [False, True]
    manifest = json.loads((work / "manifests" / "slow.json").read_text())
    assert manifest["status"] == "complete" and manifest["attempts"] == 2
    assert out.read_text() == "half done"


def test_pending_step_with_changed_inputs_starts_clean(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("abc")
    work = tmp_path / "w"
    stale = work / "s" / "stale.txt"

    def crash(step, engine):
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_text("from old inputs")
        raise KeyboardInterrupt

    def finish(step, engine):
        assert not stale.exists(), "a partial output of other inputs must not be resumed"
        (work / "s" / "out.txt").write_text("ok")

    step = Step("s", "sample", {"src": str(src)}, {"out": str(work / "s" / "out.txt")}, {}, crash, str(work / "s"))
    with pytest.raises(KeyboardInterrupt):
        Engine(work, echo=lambda m: None).run([step])
    src.write_text("changed")
    step.action = finish
    assert Engine(work, echo=lambda m: None).run([step])[0].status == "ran"


def test_missing_input_and_missing_output_are_errors(tmp_path):
    step = Step("x", "data", {"src": str(tmp_path / "nope")}, {"out": str(tmp_path / "o")}, {},
                lambda s, e: None, str(tmp_path / "x"))
    with pytest.raises(StepFailed, match="input.*missing.*nope"):
        Engine(tmp_path / "w", echo=lambda m: None).run([step])
    (tmp_path / "nope").write_text("1")
    with pytest.raises(StepFailed, match="did not write output"):
        Engine(tmp_path / "w", echo=lambda m: None).run([step])


def test_dry_run_plans_without_running(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    calls: list = []
    lines: list = []
    results = Engine(tmp_path / "w", echo=lines.append).run(_chain(tmp_path, calls), dry_run=True)
    assert calls == [] and [r.status for r in results] == ["planned", "planned"]
    assert any("r1/b" in line and "run" in line for line in lines)
