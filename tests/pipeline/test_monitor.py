"""The round monitor: its steps in the plan, monitor.json, the warnings at the thresholds, settings."""

import json

import pytest

from sicog.config import ConfigError
from sicog.pipeline.config import MonitorConfig
from sicog.pipeline.monitor import monitor_round, round_warnings
from sicog.pipeline.plan import build_plan
from tests.pipeline.test_plan import PRESETS, _smoke


def test_each_round_has_a_monitor_and_the_probe_is_answered_by_the_rounds_teacher(tmp_path):
    probe = tmp_path / "probe.jsonl"
    probe.write_text("")
    cfg = _smoke(tmp_path, "rounds=2", f"monitor.probe={probe}", f"monitor.probe_image_folder={tmp_path}")
    steps = {s.name: s for s in build_plan(cfg, PRESETS).steps}
    for k in (1, 2):
        sample = steps[f"r{k}/probe_teacher"]
        assert sample.inputs["model"] == steps[f"r{k}/warmup_reasoning"].outputs["checkpoint"]
        params = sample.params["sample"]
        assert (params["mode"], params["n"], params["temperature"], params["data"], params["image_folder"]) == \
            ("cot", 1, 0.0, str(probe), str(tmp_path))
        monitor = steps[f"r{k}/monitor"]
        assert monitor.inputs["probe"] == sample.outputs["candidates"]
        assert monitor.inputs["reasoning"] == steps[f"r{k}/curate_reasoning"].outputs["curated"]
    # round 2 compares with round 1: its curated labels and its monitor.json
    assert steps["r2/monitor"].inputs["previous_captions"] == steps["r1/curate_captions"].outputs["curated"]
    assert steps["r2/monitor"].inputs["previous_monitor"] == steps["r1/monitor"].outputs["monitor"]
    assert "previous_monitor" not in steps["r1/monitor"].inputs


def test_without_a_probe_the_signals_are_still_measured_and_off_means_off(tmp_path):
    names = [s.name for s in build_plan(_smoke(tmp_path), PRESETS).steps]
    assert "r1/monitor" in names and "r1/probe_teacher" not in names
    names = [s.name for s in build_plan(_smoke(tmp_path / "off", "monitor.enabled=false"), PRESETS).steps]
    assert not any("monitor" in n or "probe" in n for n in names)


def test_a_missing_probe_file_and_a_threshold_out_of_range_are_errors_naming_the_key(tmp_path):
    with pytest.raises(Exception, match="monitor.probe: .*nothing.jsonl not found"):
        build_plan(_smoke(tmp_path, f"monitor.probe={tmp_path / 'nothing.jsonl'}"), PRESETS)
    with pytest.raises(ConfigError, match=r"monitor.min_distinct_2: must be in \[0, 1\], got 2"):
        _smoke(tmp_path / "bad", "monitor.min_distinct_2=2")


def _curated(path, labels):
    path.write_text("".join(json.dumps({"id": str(i), "conversations": [{"from": "human", "value": "q"},
                                                                          {"from": "gpt", "value": t}]}) + "\n"
                            for i, t in enumerate(labels)))
    return str(path)


def test_monitor_round_writes_the_signals_and_warns_on_collapse(tmp_path):
    mon = MonitorConfig()
    r1 = {"reasoning": _curated(tmp_path / "r1.jsonl", [f"Step 1: look at {c}. The answer is {i}."
                                                        for i, c in enumerate(["a", "b", "c", "d"])])}
    probe1 = tmp_path / "p1.jsonl"
    probe1.write_text("".join(json.dumps({"id": str(i), "prompt": "How many?", "candidates": [f"The answer is {i}."],
                                          "meta": {"reference": "1"}}) + "\n" for i in range(4)))
    first = monitor_round(1, r1, {}, str(probe1), None, mon, str(tmp_path / "m1.json"))
    assert first["warnings"] == [] and first["teacher_probe"]["accuracy"] == 0.25
    assert first["curated"]["reasoning"]["answer_entropy_bits"] == 2.0
    assert json.loads((tmp_path / "m1.json").read_text()) == first
    # round 2: every label says 0, half are round 1's labels word for word, the teacher got worse
    r2 = {"reasoning": _curated(tmp_path / "r2.jsonl", ["Step 1: look at a. The answer is 0."] * 2 +
                                ["The answer is 0."] * 2)}
    probe2 = tmp_path / "p2.jsonl"
    probe2.write_text("".join(json.dumps({"id": str(i), "prompt": "How many?", "candidates": ["The answer is 0."],
                                          "meta": {"reference": "1"}}) + "\n" for i in range(4)))
    second = monitor_round(2, r2, r1, str(probe2), str(tmp_path / "m1.json"), mon, str(tmp_path / "m2.json"))
    text = "\n".join(second["warnings"])
    assert "teacher probe accuracy fell from 25.0% to 0.0%" in text
    assert "entropy 0.00 bits < monitor.min_answer_entropy 1.0" in text
    assert "50.0% of the labels are verbatim labels of the previous round" in text
    assert "mean length" not in text  # 9 -> 6.5 words: within monitor.max_length_change (50 %)
    assert second["curated"]["reasoning"]["copied_share"] == 0.5


def test_each_threshold_is_the_setting_that_decides():
    current = {"teacher_probe": {"accuracy": 0.5}, "curated": {"captions": {
        "distinct_2": 0.2, "mean_words": 10.0, "copied_share": 0.1}}}
    previous = {"teacher_probe": {"accuracy": 0.54}, "curated": {"captions": {"mean_words": 10.0}}}
    assert round_warnings(current, previous, MonitorConfig()) == []
    strict = MonitorConfig(max_probe_drop=0.01, min_distinct_2=0.3, max_copied_share=0.05)
    assert len(round_warnings(current, previous, strict)) == 3


def test_a_held_out_probe_leaves_every_use_of_the_annotations(tmp_path):
    cfg = _smoke(tmp_path, "monitor.probe_heldout=2", "mixture.sft_data=[instructions, annotated_reasoning]")
    steps = {s.name: s for s in build_plan(cfg, PRESETS).steps}
    rest, probe = steps["probe_heldout"].outputs["annotations"], steps["probe_heldout"].outputs["probe"]
    assert steps["r1/warmup_reasoning"].inputs["source0"] == rest
    assert rest in steps["sft_base"].inputs.values()  # stage 2 reads the rest too
    assert steps["r1/probe_teacher"].inputs["records"] == probe
    with pytest.raises(ConfigError, match="monitor.probe_heldout: a probe file"):
        build_plan(_smoke(tmp_path / "both", "monitor.probe_heldout=2", f"monitor.probe={probe}"), PRESETS)


def test_hold_out_probe_takes_whole_images_seeded(tmp_path):
    from sicog.data.formats import to_cot_question
    from sicog.pipeline.data_steps import hold_out_probe
    from sicog.utils.io import SicogError

    rows = []
    for i in range(5):
        q = f"How many circles in {i}?"
        rows += [{"id": f"i{i}-cot", "image": f"i{i}.png", "conversations": [
                     {"from": "human", "value": "<image>\n" + to_cot_question(q + "\nAnswer the question using a single word or phrase.")},
                     {"from": "gpt", "value": f"Step 4: so. The answer is {i}."}]},
                 {"id": f"i{i}-short", "image": f"i{i}.png", "conversations": [
                     {"from": "human", "value": "<image>\n" + q + "\nAnswer the question using a single word or phrase."},
                     {"from": "gpt", "value": str(i)}]}]
    source = tmp_path / "ann.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = hold_out_probe(str(source), str(tmp_path / "rest.jsonl"), str(tmp_path / "probe.jsonl"), 2, seed=0)
    assert counts == {"images": 2, "probe_records": 2, "annotations_left": 6}  # one question per held-out image
    rest = [json.loads(line) for line in (tmp_path / "rest.jsonl").read_text().splitlines()]
    probe = [json.loads(line) for line in (tmp_path / "probe.jsonl").read_text().splitlines()]
    assert not {r["image"] for r in rest} & {r["image"] for r in probe}  # no companion of a probe image is left
    hold_out_probe(str(source), str(tmp_path / "rest2.jsonl"), str(tmp_path / "probe2.jsonl"), 2, seed=0)
    assert (tmp_path / "probe2.jsonl").read_text() == (tmp_path / "probe.jsonl").read_text()
    with pytest.raises(SicogError, match="monitor.probe_heldout: 5 images held out of the 5"):
        hold_out_probe(str(source), str(tmp_path / "r3.jsonl"), str(tmp_path / "p3.jsonl"), 5, seed=0)
