"""Adapters for lmms-eval and VLMEvalKit: same prompts and scoring as `sicog evaluate`."""

import csv
import sys

from sicog.eval.lmms_task import doc_options, doc_to_text, doc_to_visual, main, process_results, write_task
from sicog.eval.mcq import read_mcq_tsv, row_prompt
from sicog.eval.vlmeval import message_to_pair
from tests.eval._tsv import MMSTAR_COLUMNS, mmstar_rows, write_tsv


def tsv_dicts(path):
    csv.field_size_limit(sys.maxsize)
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_lmms_functions_match_sicog_evaluate(tmp_path):
    rows = mmstar_rows(4)
    rows[1]["D"] = ""
    rows[2]["hint"] = "A hint."
    path = write_tsv(tmp_path / "b.tsv", MMSTAR_COLUMNS + ["hint"], rows)
    items = read_mcq_tsv(path)
    docs = tsv_dicts(path)
    for it, doc in zip(items, docs):
        assert doc_to_text(doc) == it.prompt("direct") == row_prompt(doc)
        assert doc_to_text(doc, {"style": "cot"}) == it.prompt("cot")
        assert doc_options(doc) == it.options
        assert doc_to_visual(doc)[0].tobytes() == it.load_image().tobytes()
        truth = it.options[it.answer]
        assert process_results(doc, [f"The answer is {truth}."]) == {"accuracy": 1.0}
        assert process_results(doc, ["no idea"]) == {"accuracy": 0.0}


def test_nan_options_as_pandas_gives_them():
    doc = {"question": "q?", "A": "x", "B": "y", "C": float("nan"), "D": None, "answer": "B"}
    assert doc_options(doc) == {"A": "x", "B": "y"}
    assert "C." not in doc_to_text(doc)


def test_write_task(tmp_path):
    path = write_tsv(tmp_path / "b.tsv", MMSTAR_COLUMNS, mmstar_rows(2))
    yaml_path = write_task(path, tmp_path / "task", name="mini", style="cot", max_new_tokens=99)
    text = yaml_path.read_text()
    assert yaml_path.name == "mini.yaml" and f"test: {path.resolve()}" in text
    assert "style: cot" in text and "max_new_tokens: 99" in text and "!function utils.doc_to_text" in text
    assert "from sicog.eval.lmms_task import" in (tmp_path / "task" / "utils.py").read_text()


def test_lmms_task_main_validates_the_benchmark(tmp_path, capsys):
    bad = write_tsv(tmp_path / "bad.tsv", [c for c in MMSTAR_COLUMNS if c != "answer"], mmstar_rows(2))
    assert main(["--benchmark", str(bad), "--out", str(tmp_path / "t")]) == 2
    assert "missing column 'answer'" in capsys.readouterr().err
    good = write_tsv(tmp_path / "good.tsv", MMSTAR_COLUMNS, mmstar_rows(2))
    assert main(["--benchmark", str(good), "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "sicog_mcq.yaml").is_file()


def test_vlmeval_message_to_pair():
    msg = [{"type": "image", "value": "/a.png"}, {"type": "text", "value": "Question: q?"},
           {"type": "text", "value": "Answer."}]
    assert message_to_pair(msg) == ("Question: q?\nAnswer.", "/a.png")
    assert message_to_pair([{"type": "text", "value": "hi"}]) == ("hi", None)
    two = [{"type": "image", "value": "/a.png"}, {"type": "image", "value": "/b.png"},
           {"type": "text", "value": "t"}]
    assert message_to_pair(two) == ("t", "/a.png")
