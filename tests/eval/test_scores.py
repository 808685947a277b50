"""The VLMEvalKit-exact scorers (sicog.eval.scores), per benchmark type, on VLMEvalKit-format
prediction tables made here; figures computed by hand from VLMEvalKit's rules."""

from __future__ import annotations

import pytest

from sicog.eval.scores.judge import Judge, JudgeCache, JudgeSettings
from sicog.eval.scores.registry import kind_of, score_file
from sicog.eval.scores.text import normalize_answer, strip_punctuation
from sicog.eval.scores.vqa import anls, relaxed_accuracy, vqa_accuracy
from sicog.eval.scores.yorn import read_yes_no
from sicog.utils.io import SicogError
from tests.eval._judge_server import JudgeServer
from tests.eval._tsv import write_tsv
from tests.eval._vlmeval_tables import make_tables


def table(tmp_path, name, columns, rows):
    return write_tsv(tmp_path / f"{name}_pred.tsv", columns, rows)


def test_kinds_by_vlmevalkit_name():
    assert [kind_of(n) for n in ("MMBench_DEV_EN", "MMStar", "MME", "POPE", "DocVQA_VAL", "ChartQA_TEST",
                                 "OCRBench", "MMVet", "MathVista_MINI", "AI2D_TEST", "RealWorldQA")] == [
        "mcq", "mcq", "yes_no", "yes_no", "vqa", "vqa", "ocrbench", "mmvet", "mathvista", "mcq", "mcq"]


def test_normalisation():
    assert strip_punctuation("a-b") == "a b"          # no space next to the mark: a space
    assert strip_punctuation("a - b") == "a  b"       # a mark next to a space anywhere: deleted
    assert strip_punctuation("1,000 a-b") == "1000 ab"  # a digit-comma-digit: every mark deleted
    assert strip_punctuation("end. 3.5") == "end 3.5"
    assert normalize_answer("The Two dogs!") == "2 dogs"
    assert normalize_answer("dont") == "don't"


def test_yes_no_reading():
    assert [read_yes_no(r) for r in ("Yes", "no.", "Yes, no", "maybe", "YES!", "yes-no", "(No)")] == [
        "Yes", "No", "Unknown", "Unknown", "Yes", "Unknown", "No"]


def test_pope_f1_per_split_counts_multi_split_rows_in_each(tmp_path):
    rows = [  # truth, reply, split
        ("Yes", "Yes", "adversarial"), ("Yes", "No", "adversarial"), ("No", "Yes", "adversarial"),
        ("No", "No", "popular,random"), ("Yes", "yes.", "random"),
    ]
    path = table(tmp_path, "POPE", ["index", "question", "answer", "category", "prediction"],
                 [{"index": i, "question": "q", "answer": a, "category": c, "prediction": p}
                  for i, (a, p, c) in enumerate(rows)])
    s = score_file(path, "POPE")
    # overall over exploded rows: 6 rows (row 3 twice), tp=2 fp=1 fn=1, right 4/6
    assert s.metrics["Overall/acc"] == pytest.approx(400 / 6)
    assert s.metrics["Overall/precision"] == pytest.approx(200 / 3)
    assert s.metrics["Overall/F1"] == pytest.approx(200 / 3)
    assert s.metrics["adversarial/F1"] == pytest.approx(50.0)
    assert s.metrics["popular/F1"] == 0.0 and s.metrics["popular/acc"] == 100.0
    assert s.metrics["random/recall"] == 100.0
    assert s.headline == "Overall/F1" and not s.paired
    assert s.recompute(list(s.items)) == pytest.approx(s.value)


def test_mme_score_is_accuracy_plus_acc_plus_per_category(tmp_path):
    rows = []
    for cat, marks in (("OCR", [(1, 1), (1, 0)]), ("code_reasoning", [(0, 0), (1, 1)])):
        for j, pair in enumerate(marks):
            for answer, ok in zip(("Yes", "No"), pair):
                rows.append({"index": len(rows), "question": "q", "answer": answer, "category": cat,
                             "image_path": f"{cat}/{j}.png",
                             "prediction": answer if ok else ("No" if answer == "Yes" else "Yes")})
    s = score_file(table(tmp_path, "MME", ["index", "question", "answer", "category", "image_path", "prediction"],
                         rows), "MME")
    assert s.metrics["OCR"] == pytest.approx(75 + 50)          # 3/4 right, 1/2 images both right
    assert s.metrics["code_reasoning"] == pytest.approx(50 + 50)
    assert s.metrics["perception"] == pytest.approx(125) and s.metrics["reasoning"] == pytest.approx(100)
    assert s.value == pytest.approx(225)
    assert s.recompute(list(s.items)) == pytest.approx(225)


def test_anls_threshold_and_raw_lengths():
    assert anls(["Paris"], "paris") == 1.0
    assert anls(["abcd"], "abcx") == pytest.approx(0.75)
    assert anls(["abcd"], "axyd") == 0.5          # exactly at the threshold: kept
    assert anls(["abcd"], "xyzd") == 0.0          # 0.25 < 0.5
    assert anls(["abcd"], "  abcd  ") == pytest.approx(1 - 0 / 8)  # distance 0 after trimming
    assert anls(["nope", "abcd"], "abcx") == pytest.approx(0.75)    # the best answer counts


def test_relaxed_accuracy():
    assert relaxed_accuracy(["100"], "105") == 1.0           # 5/105 of the reply
    assert relaxed_accuracy(["100"], "105.3") == 0.0
    assert relaxed_accuracy(["100"], "95.3") == 1.0          # 4.7/95.3 < 5 %
    assert relaxed_accuracy(["100"], "95.3", "answer") == 1.0
    assert relaxed_accuracy(["100"], "95.1") == 0.0          # 4.9/95.1 > 5 % of the reply ...
    assert relaxed_accuracy(["100"], "95.1", "answer") == 1.0  # ... < 5 % of the answer (VLMEvalKit >= 2025-09)
    assert relaxed_accuracy(["50%"], "0.52") == 1.0
    assert relaxed_accuracy(["0.0"], "0") == 0.0    # a zero denominator needs the same text
    assert relaxed_accuracy(["Blue"], " blue ") == 1.0
    assert relaxed_accuracy(["Blue"], "blue.") == 0.0


def test_vqa_accuracy_counts_other_answers():
    ten = ["2"] * 4 + ["two dogs"] * 6
    assert vqa_accuracy(ten, "Two") == pytest.approx(1.0 * 6 / 10 + (4 / 3) / 10 * 4 / 4 * 0 + 4 * 1 / 10)


def test_docvqa_and_chartqa_tables(tmp_path):
    doc = table(tmp_path, "DocVQA_VAL", ["index", "question", "answer", "prediction"],
                [{"index": 0, "question": "q", "answer": "['Main St', 'main street']", "prediction": "Main St."},
                 {"index": 1, "question": "q", "answer": "invoice", "prediction": "Invoice"}])
    s = score_file(doc, "DocVQA_VAL")
    assert s.kind == "vqa/anls" and s.value == pytest.approx(100 * (1 - 1 / 8 + 1) / 2)
    chart = table(tmp_path, "ChartQA_TEST", ["index", "question", "answer", "split", "prediction"],
                  [{"index": 0, "question": "q", "answer": "12", "split": "human", "prediction": "12.5"},
                   {"index": 1, "question": "q", "answer": "12", "split": "augmented", "prediction": "13"}])
    s = score_file(chart, "ChartQA_TEST")
    assert s.metrics == {"augmented": 0.0, "human": 100.0, "Overall": 50.0}


def test_ocrbench_counts(tmp_path):
    rows = [("Regular Text Recognition", "['STOP']", "It says stop."),
            ("Digit String Recognition", "['2019']", "2 0 1 9"),
            ("Handwritten Mathematical Expression Recognition", "['x ^ { 2 }']", "$x^{2}$"),
            ("Doc-oriented VQA", "['Total', 'sum']", "SUM\nis 5")]
    s = score_file(table(tmp_path, "OCRBench", ["index", "question", "answer", "category", "prediction"],
                         [{"index": i, "question": "q", "answer": a, "category": c, "prediction": p}
                          for i, (c, a, p) in enumerate(rows)]), "OCRBench")
    assert s.metrics["Text Recognition"] == 1 and s.metrics["Doc-oriented VQA"] == 1
    assert s.metrics["Handwritten Mathematical Expression Recognition"] == 1
    assert s.value == 3 and s.metrics["Final Score Norm"] == pytest.approx(0.3)
    bad = table(tmp_path, "OCRBench2", ["index", "question", "answer", "category", "prediction"],
                [{"index": 0, "question": "q", "answer": "['a']", "category": "Poetry", "prediction": "a"}])
    with pytest.raises(SicogError, match=r"OCRBench2_pred.tsv:2:category"):
        score_file(bad, "OCRBench")


def test_mmbench_circular_needs_every_rotation(tmp_path):
    cols = ["index", "question", "A", "B", "C", "answer", "category", "l2-category", "prediction"]
    rows = []
    opts = ["red", "green", "blue"]
    for q in (1, 2):
        for r in range(3):
            rot = opts[r:] + opts[:r]
            truth = "ABC"[rot.index("red")]
            rows.append({"index": q + r * 1_000_000, "question": "q", **dict(zip("ABC", rot)), "answer": truth,
                         "category": "c", "l2-category": "logic_reasoning", "prediction": f"({truth})"})
    rows[4]["prediction"] = "A"   # question 2, rotation 1 (truth C) answers wrong
    path = table(tmp_path, "MMBench_DEV_EN", cols, rows)
    s = score_file(path, "MMBench_DEV_EN")
    assert s.kind == "mcq/circular" and s.items == {"1": 1.0, "2": 0.0}
    assert s.metrics["Overall"] == 0.5 and s.metrics["LR"] == 0.5
    plain = score_file(path, "MMStar")  # the same rows, not circular: 5 of 6 right
    assert plain.metrics["Overall"] == pytest.approx(5 / 6)


def test_missing_column_names_file_and_column(tmp_path):
    path = table(tmp_path, "POPE", ["index", "question", "prediction"], [{"index": 0, "question": "q",
                                                                          "prediction": "Yes"}])
    with pytest.raises(SicogError, match=r"POPE_pred.tsv:1: missing column 'answer'"):
        score_file(path, "POPE")


def test_every_type_scores_the_made_tables(tmp_path):
    made = make_tables(tmp_path, n=30, names=["MMBench_DEV_EN", "POPE", "MME", "DocVQA_VAL", "ChartQA_TEST",
                                              "OCRBench", "AI2D_TEST"])
    for name, (_, xlsx) in made.items():
        from_xlsx = score_file(xlsx, name)
        from_tsv = score_file(xlsx.with_suffix(".tsv"), name)
        assert from_xlsx.metrics == from_tsv.metrics
        if from_xlsx.paired:
            mean = sum(from_xlsx.items.values()) / len(from_xlsx.items)
            assert from_xlsx.value == pytest.approx(from_xlsx.scale * mean)


@pytest.mark.parametrize("name", ["MMVet", "MathVista_MINI"])
def test_judged_benchmarks_retry_and_cache(tmp_path, name):
    made = make_tables(tmp_path, n=24, names=[name])
    xlsx = made[name][1]
    cache_path = tmp_path / "judge_cache.jsonl"
    with JudgeServer(fail_first=1) as server:
        settings = JudgeSettings(base_url=server.base_url, model="stub", api_key_env="", backoff_initial=0.0,
                                 backoff_max=0.0, workers=2)
        first = score_file(xlsx, name, judge=Judge(settings), cache=JudgeCache(cache_path), progress=False)
        asked = server.requests
        again = score_file(xlsx, name, judge=Judge(settings), cache=JudgeCache(cache_path), progress=False)
        assert server.requests == asked       # every verdict came from the cache
    assert again.metrics == first.metrics
    assert asked > 0 and 0 <= first.value <= 100
    if name == "MMVet":   # some grades needed a second try (a non-number at temperature 0)
        assert any(len(d["tries"]) > 1 for d in first.details)
    else:
        assert any(d["log"] == "Prefetch succeed" for d in first.details)


def test_judged_without_judge_is_an_error(tmp_path):
    made = make_tables(tmp_path, n=6, names=["MMVet"])
    with pytest.raises(SicogError, match="needs the LLM judge"):
        score_file(made["MMVet"][1], "MMVet", progress=False)


def test_empty_reply_is_nan_as_vlmevalkit_reads_it_back(tmp_path):
    rows = [{"index": 0, "question": "q", "answer": "['an']", "category": "Doc-oriented VQA", "prediction": ""},
            {"index": 1, "question": "q", "answer": "['x']", "category": "Doc-oriented VQA", "prediction": "None"}]
    s = score_file(table(tmp_path, "OCRBench", ["index", "question", "answer", "category", "prediction"], rows),
                   "OCRBench")
    assert s.items == {"0": 1.0, "1": 0.0}   # "an" is in "nan"; "None" is "nan" too


def test_mathvista_prefetch_takes_any_letter_read(tmp_path):
    cols = ["index", "question", "answer", "question_type", "answer_type", "answer_option", "choices", "task",
            "skills", "prediction"]
    rows = [{"index": 0, "question": "q", "answer": "8/11", "question_type": "multi_choice", "answer_type": "text",
             "answer_option": "B", "choices": "['3/11', '8/11']", "task": "t", "skills": "['s']", "prediction": "A"},
            {"index": 1, "question": "q", "answer": "14", "question_type": "free_form", "answer_type": "integer",
             "answer_option": "", "choices": "", "task": "t", "skills": "s", "prediction": "14"}]
    s = score_file(table(tmp_path, "MathVista_MINI", cols, rows), "MathVista_MINI", progress=False)
    assert [d["log"] for d in s.details] == ["Prefetch succeed", "Prefetch succeed"]   # no judge needed
    assert s.items == {"0": 0.0, "1": 1.0} and s.metrics["prefetch/Overall"] == 2
