"""Sweeps (sicog.pipeline.sweep): the cross product planned as one plan in which every step runs
once, a smaller N served by the first candidates of a larger one, and the table over the points."""

from __future__ import annotations

import json

import pytest

from sicog.config import ConfigError
from sicog.pipeline.cli import load_pipeline, run_sweep
from sicog.pipeline.data_steps import first_candidates_action
from sicog.pipeline.plan import build_plan
from sicog.pipeline.report.sweep import render_sweep, sweep_rows
from sicog.pipeline.step import StepFailed
from sicog.pipeline.sweep import parse_sweeps, plan_sweep

from .plan_snapshot import PRESETS, fake_world

SMOKE = str(PRESETS / "smoke.yaml")


def _sets(tmp_path):
    world = fake_world(tmp_path / "world")
    # the paper's four arms (the smoke preset also runs the controls) and the round monitor off: the step
    # counts below are those of these arms' own steps
    return [f"work_dir={tmp_path / 'work'}", f"data.world={world}", "post_training.method=none",
            "arms=[base, sicog, uncurated, oracle]", "monitor.enabled=false"]


def test_parse_sweeps_reads_values_as_yaml_and_orders_n_from_the_largest():
    sweeps = parse_sweeps(["curation.captions.threshold=0.8,0.9", "sampling.captions.n=4,6"],
                          {"seed": [0, 1], "sampling.captions.n": [2]})
    assert sweeps == {"seed": [0, 1], "sampling.captions.n": [6, 4], "curation.captions.threshold": [0.8, 0.9]}


@pytest.mark.parametrize("texts, message", [
    (["curation.captions.threshold"], "expected KEY=V1,V2"),
    (["seed=1", "seed=2"], "given twice"),
    (["seed=1,1"], "listed twice"),
    (["sampling.captions.n=4,x"], "integers >= 1"),
    (["work_dir=a,b"], "shares the work folder"),
    (["seed=0,1,2,3,4,5,6,7", "rounds=1,2,3,4,5,6,7,8,9"], "at most 64"),
])
def test_wrong_sweeps_are_errors(texts, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweeps(texts)


def test_sweep_plans_each_step_once_and_serves_smaller_n_from_larger(tmp_path):
    sets = _sets(tmp_path)
    sweeps = parse_sweeps(["curation.captions.threshold=0.5,0.8", "sampling.captions.n=2,3"])
    sweep = plan_sweep(sweeps, lambda extra: load_pipeline(SMOKE, [*sets, *extra]), PRESETS)
    assert len(sweep.points) == 4
    names = [s.name for s in sweep.steps]
    assert len(names) == len(set(names))
    # the first point is the plain plan of its values, in the plain folders
    plain = build_plan(load_pipeline(SMOKE, [*sets, "curation.captions.threshold=0.5", "sampling.captions.n=3"]),
                       PRESETS)
    assert [s.name for s in sweep.points[0].steps] == [s.name for s in plain.steps]
    # sampling and everything upstream of curation is shared by all four points
    for name in ("align", "sft_base", "r1/warmup_perception", "r1/sample_reasoning", "r1/pretrain_oracle"):
        assert all(any(s.name == name for s in p.steps) for p in sweep.points), name
    assert sweep.affects["r1/curate_captions"] == ["curation.captions.threshold", "sampling.captions.n"]
    assert "r1/sample_captions" in sweep.affects and "r1/warmup_perception" not in sweep.affects
    # N=2 is the first 2 of the N=3 sample: a data step reading the shared sample
    served = {s.name: s for s in sweep.steps}["sweep/captions.n=2/r1/sample_captions"]
    assert served.kind == "data" and served.params == {"first_candidates": 2}
    assert served.inputs["candidates"] == {s.name: s for s in sweep.steps}["r1/sample_captions"].outputs["candidates"]
    assert [len(p.derived) for p in sweep.points] == [0, 1, 0, 1]
    # the two N=2 points share the served step; their curation differs by threshold
    curate = [next(s for s in p.steps if s.name.endswith("r1/curate_captions")) for p in sweep.points]
    assert len({c.name for c in curate}) == 4
    assert curate[3].inputs["candidates"] == served.outputs["candidates"]
    assert curate[3].params["curate"]["threshold"] == 0.8
    # alone the 4 points would plan 4 x 23 steps; together: the first point's 23, then what differs -
    # N=2: its sample, curation, uncurated draw and the sicog / uncurated arms' 3 steps each (9);
    # threshold 0.8: the same but sampling (8); both (8)
    assert sum(len(p.steps) for p in sweep.points) == 92 and len(sweep.steps) == 23 + 9 + 8 + 8


def test_keys_that_move_together(tmp_path):
    sets = _sets(tmp_path)
    sweeps = parse_sweeps(["curation.captions.threshold,curation.reasoning.threshold=0.5,0.7"])
    sweep = plan_sweep(sweeps, lambda extra: load_pipeline(SMOKE, [*sets, *extra]), PRESETS)
    second = {s.name: s for s in sweep.points[1].steps}
    rea = second["sweep/captions.threshold+reasoning.threshold=0.7/r1/curate_reasoning"]
    assert rea.params["curate"]["threshold"] == 0.7


def test_a_dry_run_sweep_writes_nothing_and_the_table_lists_every_point(tmp_path):
    sets = _sets(tmp_path)
    lines = []
    sweep, engine = run_sweep(SMOKE, sets, parse_sweeps(["sampling.reasoning.n=3,2"]), dry_run=True,
                              echo=lines.append, config_dir=PRESETS)
    assert not (tmp_path / "work").exists()
    assert "2 points" in lines[0] and "served by a larger N" in lines[2]
    rows = sweep_rows(sweep, engine)
    assert [r["values"] for r in rows] == [{"sampling.reasoning.n": 3}, {"sampling.reasoning.n": 2}]
    assert rows[1]["steps"]["served_by_larger_n"] == 1 and rows[1]["steps"]["shared"] > 0
    assert set(rows[0]["arms"]) == {"base", "sicog", "uncurated", "oracle"}
    table = render_sweep(sweep, rows)
    assert "| sampling.reasoning.n |" in table and table.count("\n| 3 |") == 1


def test_first_candidates_takes_the_first_n_and_refuses_fewer(tmp_path):
    src, out = tmp_path / "c.jsonl", tmp_path / "o.jsonl"
    src.write_text(json.dumps({"id": "a", "candidates": ["x", "y", "z"], "meta": {"seed": 1}}) + "\n")
    counts = first_candidates_action(str(src), str(out), 2)(None, None)
    rec = json.loads(out.read_text())
    assert rec["candidates"] == ["x", "y"] and rec["meta"]["seed"] == 1 and counts["candidates"] == 2
    with pytest.raises(StepFailed, match="fewer than the 4"):
        first_candidates_action(str(src), str(out), 4)(None, None)
