"""`extends:` of a pipeline YAML (sicog.pipeline.extends) and the ablation configs built on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sicog.config import ConfigError
from sicog.pipeline.cli import load_pipeline, pipeline_sweep
from sicog.pipeline.plan import build_plan
from sicog.pipeline.sweep import parse_sweeps, plan_sweep

from .plan_snapshot import PIPELINES, PRESETS, ROOT, fake_world, real_inputs

ABLATIONS = PIPELINES / "ablations"
ENV = {"TEACHER_CAPTIONS": "t_cap.jsonl", "TEACHER_REASONING": "t_rea.jsonl", "COD_CAPTIONS": "cod.jsonl",
       "PLAIN_CAPTIONS": "plain.jsonl"}


def test_extends_merges_mappings_replaces_lists_and_keeps_stage_paths(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {PIPELINES / 'qwen2_7b.yaml'}\narms: [sicog]\nsampling: {{captions: {{n: 4}}}}\n")
    cfg = load_pipeline(str(child))
    assert cfg.arms == ["sicog"] and cfg.sampling.captions.n == 4
    assert cfg.sampling.captions.temperature == 0.7  # merged, not replaced
    assert cfg.stages.pretrain.config == str((PIPELINES / "../qwen2_7b/stage15_pretrain.yaml").resolve())
    # --set extends= picks another file (relative to the working folder)
    other = load_pipeline(str(child), [f"extends={PRESETS / 'smoke.yaml'}"])
    assert other.name == "demo_smoke" and other.arms == ["sicog"]


def test_a_sweep_file_loaded_as_one_pipeline_is_an_error():
    with pytest.raises(ConfigError, match="key sweep: this file is a sweep"):
        load_pipeline(str(ABLATIONS / "threshold.yaml"))


def test_extends_errors_name_the_file(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends: a cycle"):
        load_pipeline(str(a))
    b.write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match="b.yaml: key extends: file not found"):
        load_pipeline(str(a))


@pytest.mark.parametrize("name", sorted(p.name for p in ABLATIONS.glob("*.yaml")))
def test_ablation_configs_plan_at_real_scale_and_on_the_smoke_world(name, tmp_path, monkeypatch):
    inputs = real_inputs(tmp_path / "inputs")
    for var, file in ENV.items():
        (inputs / file).write_text("")
        monkeypatch.setenv(var, str(inputs / file))
    monkeypatch.chdir(inputs)
    cfg = load_pipeline(str(ABLATIONS / name), [f"work_dir={tmp_path / 'real'}"], sweep_handled=True)
    real = build_plan(cfg, ABLATIONS)
    world = fake_world(tmp_path / "world")
    cfg = load_pipeline(str(ABLATIONS / name), [f"extends={ROOT / 'sicog/demo/presets/smoke.yaml'}",
                                                f"data.world={world}", f"work_dir={tmp_path / 'smoke'}"],
                        sweep_handled=True)
    smoke = build_plan(cfg, ABLATIONS)
    for planner in (real, smoke):
        assert any(s.role == "pretrain" for s in planner.steps)
    assert Path(real.steps[0].params["train"]["model"]["language_model"]).name == "Qwen2-7B-Instruct"
    sweeps = parse_sweeps([], pipeline_sweep(str(ABLATIONS / name)))
    if sweeps:  # tau and N: one sweep each, every point planned, sampling shared
        sets = [f"extends={ROOT / 'sicog/demo/presets/smoke.yaml'}", f"data.world={world}",
                f"work_dir={tmp_path / 'smoke'}"]
        sweep = plan_sweep(sweeps, lambda extra: load_pipeline(str(ABLATIONS / name), [*sets, *extra],
                                                                sweep_handled=True), ABLATIONS)
        assert len(sweep.points) == 3
        assert all(any(s.name == "r1/warmup_perception" for s in p.steps) for p in sweep.points)
