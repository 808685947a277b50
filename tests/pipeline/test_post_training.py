"""The `post_training` section of a pipeline: the pair, DPO and evaluation steps, arms sicog_dpo
and base_dpo on the same pairs, the real-scale setting, config errors, the report's table."""

from __future__ import annotations

import json

import pytest

from sicog.config import ConfigError
from sicog.pipeline.cli import load_pipeline
from sicog.pipeline.plan import build_plan
from sicog.pipeline.report.markdown import render_markdown

from .test_plan import PIPELINES, PRESETS, _real_scale_inputs, _smoke


def test_smoke_plan_adds_pairs_dpo_and_both_dpo_arms(tmp_path):
    planner = build_plan(_smoke(tmp_path), PRESETS)
    names = [s.name for s in planner.steps]
    order = ["r1/warmup_reasoning", "r1/curate_reasoning", "r1/sft_sicog", "r1/sample_reasoning_corrupted",
             "r1/pairs", "r1/dpo_sicog", "r1/evaluate_sicog_dpo", "r1/dpo_base", "r1/evaluate_base_dpo"]
    assert [n for n in names if n in order] == order
    steps = {s.name: s for s in planner.steps}
    corrupted = steps["r1/sample_reasoning_corrupted"].params["sample"]
    assert corrupted["corruption"] == "mask" and corrupted["model"].endswith("r1/warmup_reasoning/final")
    pairs = steps["r1/pairs"].params["pairs"]
    assert pairs["curated"] == planner.curated[(1, "reasoning")] and pairs["corrupted"] == corrupted["out"]
    sicog, base = steps["r1/dpo_sicog"].params["dpo"], steps["r1/dpo_base"].params["dpo"]
    assert sicog["model"]["checkpoint"] == steps["r1/sft_sicog"].outputs["checkpoint"]
    assert base["model"]["checkpoint"] == planner.arm_checkpoints[(0, "base")]
    # the same pairs, held-out pairs and settings: only the starting model, output and name differ
    for cfg in (sicog, base):
        assert cfg["data"]["sources"][0]["path"] == steps["r1/pairs"].outputs["pairs"]
        assert cfg["dpo"]["heldout"] == steps["r1/pairs"].outputs["heldout"]
    def view(cfg):
        c = json.loads(json.dumps(cfg))
        c["model"].pop("checkpoint"), c["training"].pop("output_dir"), c.pop("stage")
        return c
    assert view(sicog) == view(base)
    assert planner.arm_checkpoints[(1, "sicog_dpo")] == steps["r1/dpo_sicog"].outputs["checkpoint"]
    assert (1, "base_dpo") in planner.evaluations


def test_without_base_arm_only_sicog_dpo_and_curated_pairs_only(tmp_path):
    planner = build_plan(_smoke(tmp_path, "arms=[sicog]", "post_training.pair_sources=[curated]"), PRESETS)
    names = {s.name for s in planner.steps}
    assert "r1/dpo_sicog" in names and "r1/dpo_base" not in names
    assert "r1/sample_reasoning_corrupted" not in names
    assert build_plan(_smoke(tmp_path / "off", "post_training.method=none"), PRESETS).dpo_steps == {}


def test_real_scale_post_training_is_the_papers_setting(tmp_path, monkeypatch):
    inputs = _real_scale_inputs(tmp_path / "inputs")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(inputs)
    planner = build_plan(load_pipeline(str(PIPELINES / "qwen2_7b.yaml"), [f"work_dir={tmp_path / 'work'}"]),
                         PIPELINES)
    steps = {s.name: s for s in planner.steps}
    dpo = steps["r1/dpo_sicog"].params["dpo"]
    assert (dpo["dpo"]["loss_type"], dpo["dpo"]["beta"], dpo["dpo"]["sft_weight"], dpo["dpo"]["reference"]) == \
        ("sigmoid", 0.1, 1.0, "model")
    assert dpo["training"]["deepspeed"].endswith("zero3.json")
    assert "torchrun --nproc_per_node=8" in steps["r1/dpo_sicog"].describe
    assert steps["r1/sample_reasoning_corrupted"].params["sample"]["corruption"] == "gaussian_blur,mask"


def test_post_training_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="post_training.method: post-training needs the 'sicog' arm"):
        build_plan(_smoke(tmp_path, "arms=[base]"), PRESETS)
    with pytest.raises(ConfigError, match="post_training.pair_sources"):
        build_plan(_smoke(tmp_path / "a", "post_training.pair_sources=[curated, guesses]"), PRESETS)
    with pytest.raises(Exception, match="post_training.dpo.*beta"):
        build_plan(_smoke(tmp_path / "b", "post_training.dpo.set={dpo: {beta: 0}}"), PRESETS)


def test_report_shows_the_dpo_arms():
    held = {"rewards/accuracy": 0.5, "rewards/margin": 0.0, "logps/accuracy": 0.25, "pairs": 6}
    after = {"rewards/accuracy": 0.8333, "rewards/margin": 0.41, "logps/accuracy": 0.5, "pairs": 6}
    report = {"arms": {"sicog": {"checkpoint": "a", "benchmark": {"accuracy": 0.4}},
                       "sicog_dpo": {"checkpoint": "b", "benchmark": {"accuracy": 0.45},
                                     "dpo": {"loss_type": "sigmoid", "beta": 0.1, "reference": "precomputed",
                                             "steps": 10, "train_pairs": 20, "heldout_pairs": 6, "heldout_before": held, "heldout_after": after}}},
              "rounds": [], "steps": []}
    text = render_markdown(report, "t")
    assert "## Post-training (DPO)" in text
    assert "| sicog_dpo | sigmoid (beta 0.1) | precomputed | 10 | 20 / 6 | 50.0 -> 83.3 | 0.41 | 25.0 -> 50.0 | 45.0 |" in text
