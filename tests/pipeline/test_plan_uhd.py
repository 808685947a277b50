"""The real-scale LLaVA-UHD pipeline (configs/pipeline/qwen2_7b_uhd.yaml) validates and plans."""

import pytest

from sicog.pipeline.cli import load_pipeline
from sicog.pipeline.plan import build_plan

from .test_plan import PIPELINES, _real_scale_inputs


def test_uhd_pipeline_plans_every_stage_with_arch_uhd(tmp_path, monkeypatch):
    inputs = _real_scale_inputs(tmp_path / "inputs")
    monkeypatch.chdir(inputs)
    cfg = load_pipeline(str(PIPELINES / "qwen2_7b_uhd.yaml"), [f"work_dir={tmp_path / 'work'}"])
    steps = {s.name: s for s in build_plan(cfg, PIPELINES).steps}
    trains = [s for s in steps.values() if "train" in s.params]
    assert trains and all(s.params["train"]["model"]["arch"] == "uhd" for s in trains)
    align = [s for s in trains if s.params["train"]["stage"] == "stage1_align"]
    assert align and all(s.params["train"]["model"]["uhd"]["never_split"] for s in align)
    pre = steps["r1/pretrain_sicog"].params["train"]
    assert not pre["model"]["uhd"]["never_split"] and pre["training"]["learning_rate"] == pytest.approx(2e-5)


def test_uhd_dpo_steps_take_the_arms_architecture(tmp_path, monkeypatch):
    inputs = _real_scale_inputs(tmp_path / "inputs")
    monkeypatch.chdir(inputs)
    cfg = load_pipeline(str(PIPELINES / "qwen2_7b_uhd.yaml"), [f"work_dir={tmp_path / 'work'}"])
    steps = {s.name: s for s in build_plan(cfg, PIPELINES).steps}
    sft = steps["r1/sft_sicog"].params["train"]["model"]
    for name in ("r1/dpo_sicog", "r1/dpo_base"):
        model = steps[name].params["dpo"]["model"]
        assert model["arch"] == "uhd" and model["uhd"] == sft["uhd"]
    # an explicit setting of post_training.dpo wins
    cfg = load_pipeline(str(PIPELINES / "qwen2_7b_uhd.yaml"), [f"work_dir={tmp_path / 'work2'}",
                                                                "post_training.dpo.set.model.arch=llava"])
    dpo_archs = {s.params["dpo"]["model"]["arch"] for s in build_plan(cfg, PIPELINES).steps if "dpo" in s.params}
    assert dpo_archs == {"llava"}
