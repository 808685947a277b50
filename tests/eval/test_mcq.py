"""Multiple-choice evaluator: TSV reading and errors, scoring with oracle/constant answerers, outputs."""

import base64
import csv
import json

import pytest
from openpyxl import load_workbook

from sicog.data.formats import MCQ_LETTER_INSTRUCTION, STEP_BY_STEP_INSTRUCTION
from sicog.eval.mcq import evaluate_mcq, read_mcq_tsv, summarize_mcq
from sicog.eval.results import write_mcq_outputs
from sicog.utils.io import SicogError
from tests.eval._tsv import MMSTAR_COLUMNS, mmstar_rows, png_base64, write_tsv

COLOURS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}


def colour_of(image) -> str:
    """The named colour nearest to the image's top-left pixel (the truth of mmstar_rows)."""
    px = image.getpixel((0, 0))
    return min(COLOURS, key=lambda c: sum((a - b) ** 2 for a, b in zip(COLOURS[c], px)))


def oracle_text(pairs):
    return [f"Step 4: Conclude the task with an answer.\nThe answer is {colour_of(im)}." for _, im in pairs]


def constant(letter):
    return lambda pairs: [letter] * len(pairs)


@pytest.fixture
def mmstar_tsv(tmp_path):
    return write_tsv(tmp_path / "MMStar_mini.tsv", MMSTAR_COLUMNS, mmstar_rows(5))


def test_mmstar_layout_reads(mmstar_tsv):
    items = read_mcq_tsv(mmstar_tsv)
    assert [it.index for it in items] == ["0", "1", "2", "3", "4"]
    assert [it.answer for it in items] == list("ABCDA")
    assert items[0].line == 2 and items[4].line == 6
    assert items[1].category == "fine-grained perception"
    assert "image" not in items[0].row and items[0].row["l2-category"] == "colour"
    assert items[2].load_image().size == (16, 16)
    prompt = items[0].prompt("direct")
    assert prompt.startswith("Question: What colour is image 0?\nOptions:\nA. red\nB. green\n")
    assert prompt.endswith(MCQ_LETTER_INSTRUCTION)
    assert items[0].prompt("cot").endswith(STEP_BY_STEP_INSTRUCTION)


def test_oracle_scores_100_and_constant_scores_its_share(mmstar_tsv):
    items = read_mcq_tsv(mmstar_tsv)
    s = summarize_mcq(evaluate_mcq(items, oracle_text, chunk_size=2, progress=False))
    assert s["accuracy"] == 1.0 and s["n"] == 5 and s["unanswered"] == 0
    for letter in "ABCD":
        share = sum(it.answer == letter for it in items) / len(items)
        s = summarize_mcq(evaluate_mcq(items, constant(letter), progress=False))
        assert s["accuracy"] == pytest.approx(share)
    assert s["chance_accuracy"] == pytest.approx(0.25)
    s = summarize_mcq(evaluate_mcq(items, constant("no idea"), progress=False))
    assert s["accuracy"] == 0.0 and s["unanswered"] == 5


def test_per_category_accuracy(mmstar_tsv):
    items = read_mcq_tsv(mmstar_tsv)
    s = summarize_mcq(evaluate_mcq(items, constant("A"), progress=False))
    # answers A,B,C,D,A; categories coarse for even rows (0, 2, 4), fine for odd rows (1, 3)
    assert s["per_category"]["coarse perception"] == {"n": 3, "correct": 2, "accuracy": 2 / 3}
    assert s["per_category"]["fine-grained perception"]["accuracy"] == 0.0


def test_prompts_and_images_reach_the_predictor(mmstar_tsv):
    items = read_mcq_tsv(mmstar_tsv)
    seen = []

    def spy(pairs):
        seen.extend(pairs)
        return ["A"] * len(pairs)

    evaluate_mcq(items, spy, chunk_size=3, progress=False)
    assert len(seen) == 5 and all(im.mode == "RGB" for _, im in seen)
    assert seen[3][0] == items[3].prompt()


def test_predictor_reply_count_checked(mmstar_tsv):
    items = read_mcq_tsv(mmstar_tsv)
    with pytest.raises(RuntimeError, match="2 replies for 5"):
        evaluate_mcq(items, lambda pairs: ["A", "B"], chunk_size=8, progress=False)


def test_outputs_like_vlmevalkit(mmstar_tsv, tmp_path):
    items = read_mcq_tsv(mmstar_tsv)
    preds = evaluate_mcq(items, oracle_text, progress=False)
    paths = write_mcq_outputs(preds, tmp_path / "out")
    lines = [json.loads(x) for x in paths["predictions"].read_text().splitlines()]
    assert len(lines) == 5 and lines[0]["extracted"] == "A" and lines[0]["correct"] is True
    assert set(lines[0]) >= {"index", "question", "prediction", "extracted", "answer", "correct", "category"}
    ws = load_workbook(paths["xlsx"]).active
    header = [c.value for c in ws[1]]
    assert header[:3] == ["index", "question", "answer"] and header[-3:] == ["prediction", "extracted", "hit"]
    assert "image" not in header and "l2-category" in header
    assert [r[header.index("hit")] for r in ws.iter_rows(min_row=2, values_only=True)] == [1] * 5
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 and rows[2]["hit"] == "1" and rows[2]["bench"] == "synthetic"


def test_missing_and_nan_options(tmp_path):
    rows = mmstar_rows(4)
    rows[1]["D"] = ""
    rows[2]["C"], rows[2]["D"] = "nan", "NaN"
    rows[1]["answer"], rows[2]["answer"] = "B", "A"
    path = write_tsv(tmp_path / "b.tsv", MMSTAR_COLUMNS, rows)
    items = read_mcq_tsv(path)
    assert list(items[1].options) == ["A", "B", "C"] and list(items[2].options) == ["A", "B"]
    assert "D." not in items[2].prompt() and "C." not in items[2].prompt()
    s = summarize_mcq(evaluate_mcq(items, constant("D"), progress=False))
    assert s["unanswered"] == 2   # "D" is no option of rows 1 and 2
    assert s["chance_accuracy"] == pytest.approx((1 / 4 + 1 / 3 + 1 / 2 + 1 / 4) / 4)


def test_hint_and_image_reference(tmp_path):
    rows = mmstar_rows(3)
    rows[1]["hint"] = "Look closely."
    rows[2]["image"] = "0"          # MMBench style: reuse row 0's image
    rows[2]["answer"] = "A"
    rows[2]["A"], rows[2]["B"], rows[2]["C"], rows[2]["D"] = "red", "green", "blue", "yellow"
    items = read_mcq_tsv(write_tsv(tmp_path / "h.tsv", MMSTAR_COLUMNS + ["hint"], rows))
    assert items[1].prompt().startswith("Hint: Look closely.\nQuestion: ")
    assert items[2].image == items[0].image
    assert summarize_mcq(evaluate_mcq(items, oracle_text, progress=False))["accuracy"] == 1.0


def test_limit(mmstar_tsv):
    assert len(read_mcq_tsv(mmstar_tsv, limit=2)) == 2


@pytest.mark.parametrize("column", ["index", "image", "question", "answer", "A"])
def test_missing_column_names_file_and_column(tmp_path, column):
    cols = [c for c in MMSTAR_COLUMNS if c != column]
    path = write_tsv(tmp_path / "bad.tsv", cols, mmstar_rows(2))
    with pytest.raises(SicogError) as e:
        read_mcq_tsv(path)
    assert "bad.tsv" in str(e.value) and f"missing column '{column}'" in str(e.value)


@pytest.mark.parametrize("cell,why", [
    ("this is not base64!!", "not valid base64"),
    (base64.b64encode(b"plain text, no image").decode(), "no readable image"),
    ("", "empty image"),
])
def test_undecodable_image_names_row_and_column(tmp_path, cell, why):
    rows = mmstar_rows(4)
    rows[2]["image"] = cell
    path = write_tsv(tmp_path / "bad.tsv", MMSTAR_COLUMNS, rows)
    with pytest.raises(SicogError) as e:
        read_mcq_tsv(path)
    msg = str(e.value)
    assert "bad.tsv" in msg and "row index=2 (line 4)" in msg and "column 'image'" in msg and why in msg


def test_bad_answer_and_duplicate_index(tmp_path):
    rows = mmstar_rows(3)
    rows[1]["answer"] = "E"
    with pytest.raises(SicogError, match=r"row index=1 \(line 3\), column 'answer'.*'E'"):
        read_mcq_tsv(write_tsv(tmp_path / "a.tsv", MMSTAR_COLUMNS, rows))
    rows = mmstar_rows(3)
    rows[2]["index"] = 0
    with pytest.raises(SicogError, match="duplicate index"):
        read_mcq_tsv(write_tsv(tmp_path / "d.tsv", MMSTAR_COLUMNS, rows))


def test_missing_file_and_empty(tmp_path):
    with pytest.raises(SicogError, match="not found"):
        read_mcq_tsv(tmp_path / "nope.tsv")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(SicogError, match="empty file"):
        read_mcq_tsv(tmp_path / "empty.tsv")


def test_quoted_multiline_cells(tmp_path):
    rows = mmstar_rows(2)
    rows[0]["question"] = 'Which colour\tis "this"?\nPick one.'
    items = read_mcq_tsv(write_tsv(tmp_path / "q.tsv", MMSTAR_COLUMNS, rows))
    assert items[0].question.startswith('Which colour\tis "this"?')
    assert items[1].line == 4   # row 0 spans lines 2-3


def test_png_helper_roundtrip():
    assert base64.b64decode(png_base64())[:4] == b"\x89PNG"
