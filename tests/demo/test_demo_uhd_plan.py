"""`sicog demo --arch uhd` plans the same loop as the default demo, every model step on arch uhd.

The run itself (about 2 minutes at full speed on 2 cores) is measured by hand, not in the suite
(docs/uhd.md); this checks that every arm and step is there and carries the architecture."""

from sicog.demo.cli import arch_overrides
from sicog.pipeline.cli import load_pipeline
from sicog.pipeline.plan import build_plan
from tests.pipeline.test_plan import PRESETS, _fake_world


def _plan(tmp_path, arch):
    sets = [f"work_dir={tmp_path / arch / 'run'}", f"data.world={_fake_world(tmp_path / arch)}"]
    cfg = load_pipeline(str(PRESETS / "smoke.yaml"), sets)
    return build_plan(load_pipeline(str(PRESETS / "smoke.yaml"), [*sets, *arch_overrides(cfg, arch)]), PRESETS)


def test_uhd_demo_plan_has_every_arm_and_step_on_uhd(tmp_path):
    llava, uhd = _plan(tmp_path, "llava"), _plan(tmp_path, "uhd")
    assert [s.name for s in uhd.steps] == [s.name for s in llava.steps]
    steps = {s.name: s for s in uhd.steps}
    for arm in ("sicog", "uncurated", "oracle", "sicog_dpo", "base_dpo"):
        assert f"r1/evaluate_{arm}" in steps, arm
    assert "evaluate_base" in steps
    trains = {n: s.params.get("train") or s.params["dpo"] for n, s in steps.items() if s.kind in ("train", "dpo")}
    assert {"align", "sft_base", "r1/pretrain_sicog", "r1/dpo_sicog", "r1/dpo_base"} <= set(trains)
    assert all(t["model"]["arch"] == "uhd" for t in trains.values()), {n: t["model"]["arch"] for n, t in trains.items()}
    # the authors align on the overview alone; every later stage slices
    assert [n for n, t in trains.items() if t["model"]["uhd"]["never_split"]] == ["align"]
    # one resampler query per patch of the stand-in tower (96 px images, 32 px patches: 3 x 3)
    assert {t["model"]["uhd"]["num_queries"] for n, t in trains.items() if "dpo" not in n} == {9}
    # every stage built from the stand-ins' parts keeps fresh separator rows: the stand-in LM's
    # small vocabulary has no rows 13 / 29892 (model.uhd.separator_init_ids)
    parts = [n for n, s in steps.items() if s.kind == "train" and "language_model" in s.inputs]
    assert {"align", "sft_base", "r1/pretrain_sicog"} <= set(parts)
    assert all(trains[n]["model"]["uhd"]["separator_init_ids"] == [] for n in parts)
