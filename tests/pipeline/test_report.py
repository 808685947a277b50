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
