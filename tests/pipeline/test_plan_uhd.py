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
