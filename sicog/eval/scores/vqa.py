"""Open-answer VQA benchmarks as VLMEvalKit scores them (its `ImageVQADataset`).

The answers of a row are the Python list in its `answer` cell, or the cell itself. The rule is
chosen by the dataset's name, as VLMEvalKit chooses it:

- DocVQA, InfoVQA: ANLS. Against each answer, the Levenshtein distance between the trimmed,
  lower-cased, whitespace-collapsed answer and reply, divided by the longer of the two *raw*
  strings (VLMEvalKit measures the lengths before normalising: kept); the item's similarity is 1
  minus the smallest such distance, and counts 0 below the 0.5 threshold.
- ChartQA: relaxed accuracy. The trimmed reply against each answer: when both read as numbers
  (Python `float`; a trailing "%" divides by 100) and the denominator is not 0, right when
  |reply - answer| / |denominator| is at most 5 %; otherwise right when equal ignoring case. The
  item is right when any answer is. The denominator: VLMEvalKit up to August 2025, and PyPI's
  nvidia-vlmeval 26.3, call pix2struct's `relaxed_correctness` with its arguments swapped, so
  the *reply* is the denominator (`RELAXED_DENOMINATOR = "reply"`, the default: the numbers of
  the paper's time and of the installable package); VLMEvalKit since #1204 (2025-09) divides by
  the answer, as pix2struct meant ("answer"). They differ only near the 5 % edge and for 0.
- OCRVQA, GQA: exact match ignoring case and surrounding space, the best over the answers.
- TextVQA and any other name: the VQA accuracy. Answers and reply are normalised
  (`sicog.eval.scores.text.normalize_answer`); against each answer i, min(1, (number of the
  *other* answers equal to the reply) / 3); the item's score is the mean over i.

Reported (percent): when the table has a `split` column, the score per split and "Overall";
otherwise "Overall" and per `category`.
"""

from __future__ import annotations

from sicog.eval.scores.result import Scores
from sicog.eval.scores.table import Row, answers_of, group_by
from sicog.eval.scores.text import normalize_answer

ANLS_THRESHOLD = 0.5
RELAXED_TOLERANCE = 0.05
RELAXED_DENOMINATORS = ("reply", "answer")
RELAXED_DENOMINATOR = "reply"


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character)."""
    if len(a) > len(b):
        a, b = b, a
    previous = list(range(len(a) + 1))
    for j, cb in enumerate(b, start=1):
        current = [j]
        for i, ca in enumerate(a, start=1):
            current.append(previous[i - 1] if ca == cb else 1 + min(previous[i - 1], previous[i], current[i - 1]))
        previous = current
    return previous[-1]


def anls_distance(answer: str, reply: str) -> float:
    """Normalised edit distance of one answer (see the module docstring); 0 = identical."""
    clean_answer = " ".join(answer.strip().lower().split())
    clean_reply = " ".join(reply.strip().lower().split())
    longest = max(len(answer.upper()), len(reply.upper()))
    return 0.0 if longest == 0 else levenshtein(clean_answer, clean_reply) / longest


def anls(answers: list[str], reply: str) -> float:
    similarity = 1.0 - min(anls_distance(a, reply) for a in answers)
    return similarity if similarity >= ANLS_THRESHOLD else 0.0


def _number(text: str) -> float | None:
    try:
        return float(text.rstrip("%")) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_match(answer: str, reply: str, denominator: str = RELAXED_DENOMINATOR) -> bool:
    """ChartQA's relaxed correctness of one answer (the reply already trimmed)."""
    reference, other = (reply, answer) if denominator == "reply" else (answer, reply)
    base, value = _number(reference), _number(other)
    if value is not None and base:
        return abs(value - base) / abs(base) <= RELAXED_TOLERANCE
    return reply.lower() == answer.lower()


def relaxed_accuracy(answers: list[str], reply: str, denominator: str = RELAXED_DENOMINATOR) -> float:
    reply = reply.strip()
    return float(max(relaxed_match(a, reply, denominator) for a in answers))


def exact_accuracy(answers: list[str], reply: str) -> float:
    reply = reply.strip().lower()
    return max(1.0 if a.strip().lower() == reply else 0.0 for a in answers)


def vqa_accuracy(answers: list[str], reply: str) -> float:
    gts = [normalize_answer(a) for a in answers]
    said = normalize_answer(reply)
    per = [min(1.0, sum(g == said for j, g in enumerate(gts) if j != i) / 3) for i in range(len(gts))]
    return sum(per) / len(per)


def rule_for(benchmark: str, denominator: str = RELAXED_DENOMINATOR):
    """(name, item score function) VLMEvalKit uses for a dataset name."""
    if "TextVQA" in benchmark:
        return "vqa_accuracy", vqa_accuracy
    if "ChartQA" in benchmark:
        if denominator not in RELAXED_DENOMINATORS:
            raise ValueError(f"relaxed accuracy denominator {denominator!r}: one of {RELAXED_DENOMINATORS}")
        return "relaxed_accuracy", lambda answers, reply: relaxed_accuracy(answers, reply, denominator)
    if "OCRVQA" in benchmark or "GQA" in benchmark:
        return "exact_accuracy", exact_accuracy
    if "DocVQA" in benchmark or "InfoVQA" in benchmark:
        return "anls", anls
    return "vqa_accuracy", vqa_accuracy


def score_vqa(rows: list[Row], benchmark: str, denominator: str = RELAXED_DENOMINATOR) -> Scores:
    rule, fn = rule_for(benchmark, denominator)
    items = {r.index: fn(answers_of(r), r["prediction"]) for r in rows}

    def mean(group: list[Row]) -> float:
        return 100.0 * sum(items[r.index] for r in group) / len(group)

    metrics: dict[str, float] = {}
    if "split" in rows[0].cells:
        for split, group in group_by(rows, "split").items():
            metrics[split] = mean(group)
        metrics["Overall"] = mean(rows)
    else:
        metrics["Overall"] = mean(rows)
        for category, group in group_by(rows, "category").items():
            metrics[category] = mean(group)
    details = [{"index": r.index, "answers": answers_of(r), "score": items[r.index]} for r in rows]
    return Scores(benchmark, f"vqa/{rule}", "Overall", metrics, items, details=details)
