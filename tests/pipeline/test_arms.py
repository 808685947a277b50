"""The arms table (sicog.pipeline.arms): the built-in arms plan exactly as the code paths they
replaced, declared arms plan from their entries alone, and wrong entries are errors naming the key."""

from __future__ import annotations

import json

import pytest

from sicog.config import ConfigError

from .plan_snapshot import CASES, SNAPSHOT, plan_case


@pytest.mark.parametrize("case", sorted(CASES))
def test_shipped_configs_plan_as_before_the_arms_table(case, tmp_path):
    before = json.loads(SNAPSHOT.read_text(encoding="utf-8"))[case]
    after = plan_case(case, tmp_path)
    assert [s["name"] for s in after] == [s["name"] for s in before]
    for old, new in zip(before, after):
        assert new == old, (f"step {old['name']} of case {case} plans differently; if that is meant, rewrite "
                            "the snapshot: PYTHONPATH=. python -m tests.pipeline.plan_snapshot")


def _plan(tmp_path, *sets):
    from sicog.pipeline.cli import load_pipeline
    from sicog.pipeline.plan import build_plan

    from .plan_snapshot import PRESETS, fake_world

    world = fake_world(tmp_path / "world")
    cfg = load_pipeline(str(PRESETS / "smoke.yaml"), [f"work_dir={tmp_path / 'work'}", f"data.world={world}",
                                                      "post_training.method=none", "label_quality=false", *sets])
    return build_plan(cfg, PRESETS), world


def test_declared_arms_plan_from_their_entries(tmp_path):
    teacher = tmp_path / "teacher.jsonl"
    teacher.write_text("")
    planner, world = _plan(tmp_path, "arms=[base, sicog, "
                           f"{{name: teacher, sources: [{{kind: file, path: {teacher}}}, {{kind: curated, task: reasoning}}],"
                           " text_only_ratio: 0.3, pretrain_steps: 7, against: [sicog]}, "
                           "{name: base_long, sft_steps: 33}, "
                           "{name: all_draws, sources: [{kind: candidate, items: all, task: captions}], text_only_ratio: 0}]")
    steps = {s.name: s for s in planner.steps}
    pre = steps["r1/pretrain_teacher"].params
    assert [s["path"] for s in pre["train"]["data"]["sources"]] == [
        str(teacher), planner.curated[(1, "reasoning")], planner.data.text_only]
    assert pre["train"]["training"]["max_steps"] == 7 and pre["mixture"]["text_only_ratio"] == 0.3
    # the same curation step serves both arms that read it
    assert [n for n in steps if "curate_reasoning" in n] == ["r1/curate_reasoning"]
    # stage 2 alone, from the stage-1 model, with its own budget; no stage 1.5
    assert "r1/pretrain_base_long" not in steps
    sft = steps["r1/sft_base_long"].params["train"]
    assert sft["training"]["max_steps"] == 33 and sft["model"]["mm_projector"].endswith("align/mm_projector.safetensors")
    # every item's draw: a step of its own beside nothing else (no matched draw is asked for)
    assert steps["r1/uncurated_captions_all"].params["items"] == "all"
    assert len(steps["r1/pretrain_all_draws"].params["train"]["data"]["sources"]) == 1
    assert steps["r1/pretrain_sicog"].params["train"]["training"]["max_steps"] == 15  # stages.pretrain's


def test_an_arm_of_one_task_samples_only_that_task(tmp_path):
    planner, _ = _plan(tmp_path, "arms=[{name: cap_only, sources: [{kind: curated, task: captions}]}]")
    names = [s.name for s in planner.steps]
    assert "r1/sample_captions" in names and "r1/curate_captions" in names
    assert not [n for n in names if "reasoning" in n]
    assert not [n for n in names if n.startswith("evaluate_")]  # no base arm listed: none evaluated


@pytest.mark.parametrize("arms, message", [
    ("[base, nonsense]", r"arms\[1\]: unknown arm 'nonsense'"),
    ("[base, base]", "listed twice"),
    ("[{name: sicog, sources: []}]", "built-in arm"),
    ("[{name: x, sources: [{kind: file}]}]", r"arms\[0\].sources\[0\].path: a source of kind file needs a path"),
    ("[{name: x, sources: [{kind: truth, path: a.jsonl}]}]", "only a source of kind file"),
    ("[{name: x, pretrain_steps: 3}]", "pretrain_steps: the arm has no stage-1.5 sources"),
    ("[{name: x, sources: [{kind: curated}], against: [nobody]}]", r"against\[0\]"),
    ("[{name: x, sources: [{kind: guess}]}]", "kind: must be one of"),
    ("[{name: x, sources: [{kind: curated}], text_only_ratio: 1.0}]", "text_only_ratio: must be in"),
    ("[base, {name: nothing}]", "all train nothing"),
    ("[{name: x, sources: [{kind: curated, parseable: true}]}]", r"sources\[0\].parseable: only for kind candidate"),
    ("[{name: x, sources: [{kind: curated, noise: 0.3}]}]", r"sources\[0\].noise: only for kind truth"),
    ("[{name: x, sources: [{kind: truth, noise: 0.3, noise_from: curated}]}]", "a share or noise_from, not both"),
    ("[{name: x, sources: [{kind: truth, noise: 1.5}]}]", "noise: must be in"),
    ("[{name: x, sources: [{kind: truth, noise_from: greedy}]}]", "noise_from: must be one of"),
    ("[{name: x, sources: [{kind: truth, noise_values: like_curated}]}]", "noise_values: only for a truth source with"),
    ("[{name: x, sources: [{kind: truth, noise: 0.2, noise_values: like}]}]", "noise_values: must be one of"),
    ("[{name: uncurated_valid, sources: []}]", "built-in arm"),
])
def test_wrong_arm_entries_name_the_key(tmp_path, arms, message):
    with pytest.raises(ConfigError, match=message):
        _plan(tmp_path, f"arms={arms}")


def test_round_arms_name_declared_arms(tmp_path):
    planner, _ = _plan(tmp_path, "rounds=2", "arms=[sicog, {name: cap_only, sources: [{kind: curated, task: captions}]}]",
                       "round_arms=[sicog, cap_only]")
    names = [s.name for s in planner.steps]
    assert "r2/pretrain_cap_only" in names and "r2/pretrain_sicog" in names
    with pytest.raises(ConfigError, match=r"round_arms\[0\]: unknown arm 'who'"):
        _plan(tmp_path / "b", "round_arms=[who]")


def test_an_arm_may_read_an_earlier_rounds_curated_data(tmp_path):
    keep = "{name: keep, sources: [{kind: curated, round: 1}, {kind: curated}]}"
    planner, _ = _plan(tmp_path, "rounds=2", f"arms=[sicog, {keep}]", "round_arms=[sicog, keep]")
    steps = {s.name: s for s in planner.steps}
    paths = [s["path"] for s in steps["r2/pretrain_keep"].params["train"]["data"]["sources"]]
    assert paths[:4] == [planner.curated[(1, "captions")], planner.curated[(1, "reasoning")],
                         planner.curated[(2, "captions")], planner.curated[(2, "reasoning")]]
    with pytest.raises(ConfigError, match=r"round: round 2 comes after round 1"):
        _plan(tmp_path / "b", "rounds=2", "arms=[sicog, {name: ahead, sources: [{kind: curated, round: 2}]}]")
    with pytest.raises(ConfigError, match="only for kind curated"):
        _plan(tmp_path / "c", "arms=[{name: x, sources: [{kind: truth, round: 1}]}]")


def test_control_arms_plan_their_data_from_the_table(tmp_path):
    planner, world = _plan(tmp_path, "arms=[base, uncurated_valid, oracle, oracle_noised, annotated, "
                           "{name: half_wrong, sources: [{kind: truth, noise: 0.5, task: reasoning}]}, "
                           "{name: evenly_wrong, sources: [{kind: truth, noise_from: curated}]}, "
                           "{name: half_like, sources: [{kind: truth, noise: 0.5, noise_values: like_curated}]}]")
    steps = {s.name: s for s in planner.steps}
    # no arm trains on curated data, but uncurated_valid takes the items curation kept and oracle_noised
    # as many wrong labels as it has: both tasks are sampled and curated
    for task in ("captions", "reasoning"):
        curated = planner.curated[(1, task)]
        valid = steps[f"r1/uncurated_{task}_kept_parseable"]
        assert valid.inputs["curated"] == curated and valid.params["items"] == "kept"
        assert valid.params["parseable"] == {"captions": "cod", "reasoning": "cot"}[task]
        # oracle_noised: the share of wrong curated labels, wrong values drawn like theirs; evenly_wrong: uniformly
        like, even = steps[f"r1/noised_{task}_like_curated"], steps[f"r1/noised_{task}"]
        for noised in (like, even):
            assert noised.inputs == {"truth": str(world / f"oracle_{task}.jsonl"), "labels": curated}
            assert noised.params["share"] is None and noised.params["share_of"] == "labels"
        assert like.params["values"] == "like_curated" and "values" not in even.params
        half_like = steps[f"r1/noised_{task}_0.5_like_curated"]
        assert half_like.params["share"] == 0.5 and half_like.params["share_of"] is None
        assert half_like.inputs["labels"] == curated  # the values only
    assert steps["r1/noised_reasoning_0.5"].params["share"] == 0.5 and "labels" not in steps[
        "r1/noised_reasoning_0.5"].inputs
    def sources(arm):
        return [x["path"] for x in steps[f"r1/pretrain_{arm}"].params["train"]["data"]["sources"]][:-1]  # - text
    assert sources("oracle") == [str(world / "oracle_captions.jsonl"), str(world / "oracle_reasoning.jsonl")]
    assert sources("oracle_noised") == [steps["r1/noised_captions_like_curated"].outputs["records"],
                                        steps["r1/noised_reasoning_like_curated"].outputs["records"]]
    assert sources("evenly_wrong") == [steps["r1/noised_captions"].outputs["records"],
                                       steps["r1/noised_reasoning"].outputs["records"]]
    assert sources("annotated") == [str(world / "annotated_captions.jsonl"), str(world / "annotated_reasoning.jsonl")]
    assert sources("uncurated_valid") == [steps["r1/uncurated_captions_kept_parseable"].outputs["records"],
                                          steps["r1/uncurated_reasoning_kept_parseable"].outputs["records"]]
    assert sources("half_wrong") == [steps["r1/noised_reasoning_0.5"].outputs["records"]]
    # annotations alone need no warm-up, sampling or curation
    planner, _ = _plan(tmp_path / "b", "arms=[base, annotated]")
    assert not [s.name for s in planner.steps if s.name.startswith("r1/") and "annotated" not in s.name]


def test_companions_pair_every_labelled_source_but_the_annotations(tmp_path):
    """mixture.companions: each curated / candidate / truth file passes through one companions step
    (shared by the arms that read it); the annotations, which have both forms, are read as they are."""
    planner, world = _plan(tmp_path, "mixture.companions=true",
                           "arms=[base, sicog, uncurated_valid, oracle, oracle_noised, annotated, "
                           "{name: oracle_again, sources: [{kind: truth}], text_only_ratio: 0}]")
    steps = {s.name: s for s in planner.steps}

    def sources(arm):
        return [x["path"] for x in steps[f"r1/pretrain_{arm}"].params["train"]["data"]["sources"]
                if "text_only" not in x["path"]]

    paired = {s.inputs["records"]: s.outputs["records"] for s in planner.steps if s.name.startswith("r1/companions_")}
    assert sources("sicog") == [paired[planner.curated[(1, t)]] for t in ("captions", "reasoning")]
    assert sources("oracle") == sources("oracle_again") == [paired[str(world / f"oracle_{t}.jsonl")]
                                                              for t in ("captions", "reasoning")]
    assert sources("oracle_noised") == [paired[steps[f"r1/noised_{t}_like_curated"].outputs["records"]]
                                        for t in ("captions", "reasoning")]
    assert sources("uncurated_valid") == [paired[steps[f"r1/uncurated_{t}_kept_parseable"].outputs["records"]]
                                          for t in ("captions", "reasoning")]
    assert sources("annotated") == [str(world / "annotated_captions.jsonl"), str(world / "annotated_reasoning.jsonl")]
    assert len(paired) == 8 and "r1/companions_oracle_reasoning" in steps and "r1/companions_r1_curate_captions" in steps
    # off (the default): the files themselves
    planner, _ = _plan(tmp_path / "off", "arms=[base, sicog]")
    assert not [s for s in planner.steps if "companions" in s.name]
