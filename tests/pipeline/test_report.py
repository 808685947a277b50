"""The pipeline report: an arm's figures read from `sicog evaluate` summaries, and their markdown."""

from sicog.pipeline.report.collect import arm_result
from sicog.pipeline.report.markdown import render_markdown
from sicog.utils.io import write_json


def _summary(acc, blind, per, per_blind):
    by = {"likelihood": {"accuracy": acc, "n": 10, "per_category": {k: {"accuracy": v} for k, v in per.items()}},
          "generate": {"accuracy": 0.25, "n": 10, "per_category": {}}}
    return {"mcq_scoring": "likelihood", "mcq": by["likelihood"], "mcq_by_scoring": by,
            "mcq_shuffled_images": {"accuracy": blind, "n": 10,
                                    "per_category": {k: {"accuracy": v} for k, v in per_blind.items()}},
            "captions": {"object_recall": 0.5, "hallucination_rate": 0.1, "n": 4}}


def test_arm_result_reads_both_scorings_and_the_shuffled_control(tmp_path):
    write_json(tmp_path / "eval" / "summary.json", _summary(0.6, 0.3, {"count": 0.9}, {"count": 0.2}))
    arm = arm_result(str(tmp_path / "ckpt"), str(tmp_path / "eval"), tmp_path)
    b = arm["benchmark"]
    assert b["accuracy"] == 0.6 and b["scoring"] == "likelihood"
    assert b["accuracy_by_scoring"] == {"likelihood": 0.6, "generate": 0.25}
    assert b["accuracy_shuffled_images"] == 0.3 and b["per_category_shuffled_images"] == {"count": 0.2}
    assert b["per_category"] == {"count": 0.9} and arm["checkpoint"] == "ckpt"


def test_markdown_shows_the_headline_the_other_scoring_and_the_control(tmp_path):
    write_json(tmp_path / "e1" / "summary.json", _summary(0.6, 0.3, {"count": 0.9}, {"count": 0.2}))
    write_json(tmp_path / "e2" / "summary.json", _summary(0.4, 0.35, {"count": 0.5}, {"count": 0.25}))
    arms = {"base": arm_result(str(tmp_path / "a"), str(tmp_path / "e2"), tmp_path),
            "sicog": arm_result(str(tmp_path / "b"), str(tmp_path / "e1"), tmp_path)}
    md = render_markdown({"arms": arms, "rounds": [], "steps": []}, "t")
    assert "scored by **likelihood**; also shown: generate" in md
    assert "| sicog | 60.0 | 25.0 | 30.0 | 10 |" in md
    assert "| base, shuffled images | 25.0 |" in md and "| sicog | 90.0 |" in md


def _eval_dir(path, hits: list[int]):
    from sicog.utils.io import write_jsonl

    write_json(path / "summary.json", {"mcq": {"accuracy": sum(hits) / len(hits), "n": len(hits)},
                                       "files": {"predictions": "mcq_predictions.jsonl"}})
    write_jsonl(path / "mcq_predictions.jsonl", [{"index": i, "correct": bool(h)} for i, h in enumerate(hits)])
    return str(path)


def test_paired_comparisons_read_per_question_hits_and_skip_missing_arms(tmp_path):
    from sicog.pipeline.report.compare import paired_comparisons

    base = [1, 0, 0, 1] * 50
    sicog = [1, 1, 0, 1] * 50  # right on every question base gets, plus a quarter more
    dirs = {"base": _eval_dir(tmp_path / "b", base), "sicog": _eval_dir(tmp_path / "s", sicog),
            "uncurated": None, "oracle": str(tmp_path / "missing")}
    (c,) = paired_comparisons(dirs)
    assert (c["arm"], c["against"], c["n"]) == ("sicog", "base", 200)
    assert abs(c["difference"] - 0.25) < 1e-12 and 0.15 < c["ci95"][0] < 0.25 < c["ci95"][1] < 0.35
    md = render_markdown({"arms": {}, "comparisons": [c], "rounds": [], "steps": []}, "t")
    assert "| sicog − base | +25.0 | [+" in md


def test_markdown_shows_accuracy_intervals(tmp_path):
    s = _summary(0.6, 0.3, {}, {})
    s["mcq"]["ci95"], s["mcq_shuffled_images"]["ci95"] = [0.55, 0.65], [0.25, 0.35]
    write_json(tmp_path / "e" / "summary.json", s)
    md = render_markdown({"arms": {"base": arm_result("c", str(tmp_path / "e"), tmp_path)}, "rounds": [],
                          "steps": []}, "t")
    assert "| base | 60.0 [55.0, 65.0] | 25.0 | 30.0 [25.0, 35.0] |" in md


def test_overlap_table_of_the_stage15_audit():
    audit = {"r1_sicog": {"records": 56, "benchmarks": {"world": {
        "benchmark_items_flagged": 8, "benchmark_items": 40, "records_flagged": 9, "image_exact_pairs": 0,
        "image_near_pairs": 0, "question_pairs": 10}}}, "r1_oracle": {"error": "--data x: file not found"}}
    md = render_markdown({"arms": {}, "overlap": audit, "rounds": [], "steps": []}, "t")
    assert "| r1_sicog (56 records) | world | 8/40 | 9 | 0 | 0 | 10 |" in md
    assert "file not found" in md


def test_round_monitor_table_shows_every_round_and_its_warnings():
    signals = {"labels": 4, "distinct_1": 0.5, "distinct_2": 0.25, "mean_words": 9.0, "median_words": 9,
               "copied_share": None}
    cot = {**signals, "copied_share": 0.5, "answer_entropy_bits": 0.0, "distinct_answers": 1, "top_answer": "0",
           "top_answer_share": 1.0}
    monitor = [{"round": 1, "accuracy": 0.4, "teacher_probe": {"accuracy": 0.25, "answered": 3, "items": 4},
                "curated": {"captions": signals}, "warnings": []},
               {"round": 2, "accuracy": 0.3, "teacher_probe": None, "curated": {"reasoning": cot},
                "warnings": ["curated reasoning: entropy low"]}]
    md = render_markdown({"arms": {}, "monitor": monitor, "rounds": [], "steps": []}, "t")
    assert "## Round monitor" in md
    assert "| 1 | 40.0 | 25.0 (3 / 4) | captions | 4 | 0.5 | 0.25 | 9.0 / 9 | – | – |" in md
    assert "| 2 | 30.0 | – | reasoning | 4 | 0.5 | 0.25 | 9.0 / 9 | 0.00 (1; 100.0 '0') | 50.0 |" in md
    assert "- round 2: curated reasoning: entropy low" in md


def test_each_subtype_apart_with_its_interval_and_the_generate_subset(tmp_path):
    def summary(acc_all, acc_class):
        subs = {"count_all": {"accuracy": acc_all, "n": 6, "ci95": [acc_all - 0.1, acc_all + 0.1]},
                "count_class": {"accuracy": acc_class, "n": 4, "ci95": [acc_class - 0.2, acc_class + 0.2]}}
        s = _summary(0.6, 0.3, {}, {})
        s["prompt_style"] = "open_cot"
        s["mcq"]["per_subcategory"] = subs
        s["mcq_by_scoring"]["generate"].update(n=5, ci95=[0.0, 0.6])
        s["mcq_shuffled_images"]["per_subcategory"] = {k: {**v, "accuracy": 0.25} for k, v in subs.items()}
        return s

    write_json(tmp_path / "e" / "summary.json", summary(0.8, 0.5))
    arm = arm_result(str(tmp_path / "c"), str(tmp_path / "e"), tmp_path)
    assert arm["benchmark"]["per_subcategory"]["count_class"] == {"accuracy": 0.5, "ci95": [0.3, 0.7], "n": 4}
    assert arm["benchmark"]["by_scoring"]["generate"] == {"accuracy": 0.25, "ci95": [0.0, 0.6], "n": 5}
    md = render_markdown({"arms": {"sicog": {**arm, "note": "curated labels"}}, "rounds": [], "steps": []}, "t")
    assert "- `sicog`: curated labels" in md
    assert "| arm | count_all (n 6) | count_class (n 4) |" in md
    assert "| sicog | 80.0 [70.0, 90.0] | 50.0 [30.0, 70.0] |" in md
    assert "| sicog, shuffled images | 25.0 [70.0, 90.0] | 25.0 [30.0, 70.0] |" in md
    assert "| 25.0 [0.0, 60.0] (n 5, open_cot) |" in md and "step-by-step answer to the open question" in md
