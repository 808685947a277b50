"""Steps side by side (`parallel_steps`): dependencies from declared paths, overlap, failure, resume."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sicog.pipeline.engine import Engine
from sicog.pipeline.schedule import chain_lengths, dependencies, run_parallel
from sicog.pipeline.step import Step, StepFailed


def _step(tmp_path: Path, name: str, inputs: list[str], log: list, fail: bool = False, hold: float = 0.0) -> Step:
    out = tmp_path / "w" / name / "out.txt"

    def action(step, engine):
        log.append(("start", name, time.monotonic(), threading.current_thread().name))
        time.sleep(hold)
        if fail:
            raise StepFailed(f"{name} failed")
        text = "".join(Path(tmp_path / "w" / i / "out.txt").read_text() for i in inputs)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + name)
        log.append(("end", name, time.monotonic(), None))
        return {}

    return Step(name, "data", {i: str(tmp_path / "w" / i / "out.txt") for i in inputs}, {"out": str(out)},
                {}, action, str(out.parent))


def _diamond(tmp_path, log, fail_c=False):
    # a -> (b, c) -> d: b and c are independent, d needs both
    return [_step(tmp_path, "a", [], log), _step(tmp_path, "b", ["a"], log, hold=0.3),
            _step(tmp_path, "c", ["a"], log, hold=0.3, fail=fail_c), _step(tmp_path, "d", ["b", "c"], log)]


def test_dependencies_follow_declared_paths(tmp_path):
    deps = dependencies(_diamond(tmp_path, []))
    assert deps == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}


def test_independent_steps_overlap_and_dependent_ones_wait(tmp_path):
    log: list = []
    results = Engine(tmp_path / "w", echo=lambda m: None).run(_diamond(tmp_path, log), parallel=2)
    assert [r.name for r in results] == ["a", "b", "c", "d"] and {r.status for r in results} == {"ran"}
    t = {(kind, name): when for kind, name, when, _ in log}
    assert t[("start", "c")] < t[("end", "b")] and t[("start", "b")] < t[("end", "c")]   # b and c overlap
    assert t[("start", "d")] >= max(t[("end", "b")], t[("end", "c")])
    assert t[("start", "b")] >= t[("end", "a")]
    assert (tmp_path / "w" / "d" / "out.txt").read_text() == "ab" + "ac" + "d"


def test_a_failure_stops_new_starts_and_a_rerun_resumes(tmp_path):
    log: list = []
    engine = Engine(tmp_path / "w", echo=lambda m: None)
    with pytest.raises(StepFailed, match="c failed"):
        engine.run(_diamond(tmp_path, log, fail_c=True), parallel=2)
    assert "d" not in {name for _, name, _, _ in log}
    assert (tmp_path / "w" / "b" / "out.txt").is_file()   # the step running beside the failure finished
    log.clear()
    results = engine.run(_diamond(tmp_path, log), parallel=2)
    assert [r.status for r in results] == ["skipped", "skipped", "resumed", "ran"]  # c was left pending


def test_parallel_steps_need_child_processes():
    from sicog.config import ConfigError, check_config
    from sicog.pipeline.cli import load_pipeline

    with pytest.raises(ConfigError, match="launcher.in_process: false"):
        check_config(load_pipeline(None, ["parallel_steps=2", "launcher.in_process=true"]))
    check_config(load_pipeline(None, ["parallel_steps=2"]))


def test_the_ready_step_with_the_longest_chain_starts_first(tmp_path):
    # a -> short (a leaf) and a -> long1 -> long2: with one free slot after a, long1 goes first
    steps = [_step(tmp_path, "a", [], []), _step(tmp_path, "short", ["a"], []),
             _step(tmp_path, "long1", ["a"], []), _step(tmp_path, "long2", ["long1"], [])]
    assert chain_lengths(steps, dependencies(steps)) == {"a": 3, "short": 1, "long1": 2, "long2": 1}
    order: list[str] = []
    run_parallel(steps, 1, lambda step, i: order.append(step.name))
    assert order == ["a", "long1", "short", "long2"]  # then plan order between equal chains


def test_a_diagnostic_step_waits_for_the_others_of_its_chain_length(tmp_path):
    # a -> (greedy, evaluate): both leaves; the diagnostic label-quality sample goes after the evaluation
    steps = [_step(tmp_path, "a", [], []), _step(tmp_path, "greedy", ["a"], []), _step(tmp_path, "evaluate", ["a"], [])]
    steps[1].diagnostic = True
    order: list[str] = []
    run_parallel(steps, 1, lambda step, i: order.append(step.name))
    assert order == ["a", "evaluate", "greedy"]
