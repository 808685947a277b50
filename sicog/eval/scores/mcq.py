"""Multiple choice as VLMEvalKit scores it without an LLM judge (`--judge exact_matching`).

The letter read from a reply is `sicog.eval.vlmevalkit_matching.vlmevalkit_choice` (the rules
are there); an item is right when it equals `answer`.

Circular evaluation (VLMEvalKit applies it when the dataset name contains "mmbench", "ccbench",
"circular" or "mmcr"): the TSV holds each question several times with its options rotated; the
copies share `g_index` (when the table has no such column: index mod 1,000,000) and the copy
whose index equals it is the group's main row. A group counts as right only when *every* copy
is read as its own answer; results are reported over the main rows (their `split`, `category`,
`l2-category`).

Reported (fractions 0-1, as VLMEvalKit's `_acc.csv`; the headline is ×100): "Overall", then per
`l2-category` and `category` (MMBench's ability names abbreviated as VLMEvalKit does), per
`split` when the table has one (keys `split/name`).
"""

from __future__ import annotations

import string

from sicog.eval.scores.result import Scores
from sicog.eval.scores.table import Row, group_by, is_missing
from sicog.eval.vlmevalkit_matching import vlmevalkit_choice
from sicog.utils.io import SicogError

CIRCULAR_MARKS = ("mmbench", "ccbench", "circular", "mmcr")
MMBENCH_ABBREVIATIONS = {"coarse_perception": "CP", "finegrained_perception (instance-level)": "FP-S",
                         "finegrained_perception (cross-instance)": "FP-C", "logic_reasoning": "LR",
                         "relation_reasoning": "RR", "attribute_reasoning": "AR"}
CIRCULAR_OFFSET = 1_000_000


def is_circular(benchmark: str) -> bool:
    return any(mark in benchmark.lower() for mark in CIRCULAR_MARKS)


def options_of(row: Row) -> dict[str, str]:
    return {c: row.cells[c] for c in string.ascii_uppercase if c in row.cells and not is_missing(row.cells[c])}


def choice_of(row: Row) -> str:
    return vlmevalkit_choice(row["prediction"], options_of(row))


def _report(rows: list[Row], hits: dict[str, bool]) -> dict[str, float]:
    def acc(group):
        return sum(hits[r.index] for r in group) / len(group)

    splits = group_by(rows, "split") if "split" in rows[0].cells else {"none": rows}
    metrics: dict[str, float] = {}
    for split, group in splits.items():
        prefix = "" if split == "none" and len(splits) == 1 else f"{split}/"
        metrics[f"{prefix}Overall"] = acc(group)
        for column in ("l2-category", "category"):
            for value, sub in group_by(group, column).items():
                metrics[f"{prefix}{MMBENCH_ABBREVIATIONS.get(value, value)}"] = acc(sub)
    return metrics


def _index_number(row: Row) -> int:
    try:
        return int(float(row.index))
    except ValueError:
        raise SicogError(f"{row.where('index')}: circular evaluation needs integer indexes, not {row.index!r}") from None


def score_mcq(rows: list[Row], benchmark: str) -> Scores:
    circular = is_circular(benchmark)
    details = [{"index": r.index, "extracted": choice_of(r), "answer": r["answer"]} for r in rows]
    right = {d["index"]: d["extracted"] == d["answer"] for d in details}
    if not circular:
        hits, main = right, rows
    else:
        def group_of(r: Row) -> int:
            g = r.get("g_index")
            return int(float(g)) if g is not None else _index_number(r) % CIRCULAR_OFFSET

        groups: dict[int, list[Row]] = {}
        for r in rows:
            groups.setdefault(group_of(r), []).append(r)
        main = sorted((r for r in rows if _index_number(r) == group_of(r)), key=_index_number)
        hits = {r.index: all(right[c.index] for c in groups[group_of(r)]) for r in main}
    metrics = _report(main, hits)
    metrics["Overall%"] = 100.0 * sum(hits.values()) / len(hits)
    for d in details:
        d["hit"] = int(right[d["index"]])
    return Scores(benchmark, "mcq/circular" if circular else "mcq", "Overall%", metrics,
                  {i: float(h) for i, h in hits.items()}, details=details)
