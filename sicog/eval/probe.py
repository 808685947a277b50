"""A teacher's label accuracy on a labelled probe set: its greedy replies scored against the truth.

The probe is a file of labelled question records (an image, a question, the true answer as the
gpt turn: a short answer, an option letter or a CoT ending in "The answer is X."). The teacher
answers each question step by step (`sicog sample --mode cot`, one greedy candidate), and its
reply is read as CoT curation and evaluation read one: the final answer (`extract_cot_answer`),
matched to the truth by `answer_matches` (an option letter or that option's text count alike for
a multiple-choice question, whose options are read from the prompt).
"""

from __future__ import annotations

from sicog.data.formats import extract_cot_answer, read_mcq_options
from sicog.data.records import iter_json_objects
from sicog.eval.answers import answer_matches
from sicog.utils.io import SicogError


def true_answer(reference: str) -> str:
    """The truth of a probe record: the final answer of a CoT reference, else the reference itself."""
    return extract_cot_answer(reference) or reference.strip()


def score_reply(reply: str, reference: str, prompt: str) -> tuple[bool, bool]:
    """(the reply has a final answer, that answer is right) for one probe question."""
    got = extract_cot_answer(reply or "")
    return got is not None, answer_matches(got, true_answer(reference), read_mcq_options(prompt))


def score_probe(candidates_path: str) -> dict:
    """{items, answered, correct, accuracy} of the first candidate of each probe item (its greedy
    reply); a record whose input had no answer to compare with is an error naming file:line."""
    items = answered = correct = 0
    for line, rec in iter_json_objects(candidates_path):
        reference = (rec.get("meta") or {}).get("reference")
        if not isinstance(reference, str) or not reference.strip():
            raise SicogError(f"{candidates_path}:{line}: key 'meta.reference': a probe record needs its true answer "
                             "(the gpt turn of the probe file's record)")
        reply = (rec.get("candidates") or [""])[0] or ""
        has_answer, ok = score_reply(reply, reference, rec.get("prompt") or "")
        items += 1
        answered += has_answer
        correct += ok
    return {"items": items, "answered": answered, "correct": correct,
            "accuracy": correct / items if items else None}
