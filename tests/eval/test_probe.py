"""The teacher's probe accuracy: replies read as evaluation and curation read them."""

import json

import pytest

from sicog.data import formats as F
from sicog.eval.probe import score_probe, true_answer
from sicog.utils.io import SicogError


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_score_probe_open_and_multiple_choice(tmp_path):
    mcq = F.to_cot_question(F.mcq_prompt("How many circles?", {"A": "2", "B": "3"}))
    rows = [
        {"id": "a", "prompt": "How many squares?", "candidates": ["Step 4: ... The answer is 3."], "meta": {"reference": "3"}},
        {"id": "b", "prompt": mcq, "candidates": ["The answer is B."], "meta": {"reference": "B"}},
        {"id": "c", "prompt": mcq, "candidates": ["The answer is 3."], "meta": {"reference": "B"}},  # B's text
        {"id": "d", "prompt": mcq, "candidates": ["The answer is A."], "meta": {"reference": "B"}},  # wrong
        {"id": "e", "prompt": "How many?", "candidates": ["I cannot tell"], "meta": {"reference": "2"}},  # no answer
    ]
    assert score_probe(_write(tmp_path / "c.jsonl", rows)) == {"items": 5, "answered": 4, "correct": 3,
                                                                "accuracy": 0.6}


def test_a_cot_reference_is_read_for_its_final_answer():
    assert true_answer("Step 4: Conclusion. There are two. The answer is 2.") == "2"
    assert true_answer(" red ") == "red"


def test_a_probe_record_without_its_answer_is_an_error_naming_file_and_line(tmp_path):
    path = _write(tmp_path / "c.jsonl", [{"id": "a", "prompt": "q", "candidates": ["x"], "meta": {"reference": "1"}},
                                         {"id": "b", "prompt": "q", "candidates": ["x"], "meta": {}}])
    with pytest.raises(SicogError, match=r"c\.jsonl:2: key 'meta.reference'"):
        score_probe(path)
