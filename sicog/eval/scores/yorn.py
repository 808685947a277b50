"""Yes/no benchmarks as VLMEvalKit scores them (its `Y/N` datasets): POPE, MME, and the default.

Reading the reply (VLMEvalKit's exact matching, no LLM judge): lower-case it, strip punctuation
(`sicog.eval.scores.text.strip_punctuation`), split into words; "Yes" when the words contain
"yes" and not "no", "No" for the reverse, "Unknown" otherwise. An item is right when that equals
the `answer` cell exactly (case-sensitive, "Yes"/"No").

- POPE: a `category` cell may list several splits ("adversarial,popular"); the row then counts in
  each, and in the overall figures once per split it names (VLMEvalKit explodes the rows before
  computing the overall numbers too). Per split and overall: accuracy, and precision, recall and
  F1 with "Yes" as the positive class (0 where a denominator is 0); all in percent. The paper's
  figure is the overall F1.
- MME: per `category`, accuracy (%) plus acc+ (%): the share of images (`image_path`) whose two
  questions are both right; MME's score of a category is their sum (0-200). Perception is the
  sum over its ten categories, cognition (VLMEvalKit: "reasoning") over four; the paper's figure
  is perception + cognition.
- anything else: overall accuracy and per `category` / `l2-category`.
"""

from __future__ import annotations

from sicog.eval.scores.result import Scores
from sicog.eval.scores.table import Row, group_by, is_missing
from sicog.eval.scores.text import strip_punctuation
from sicog.utils.io import SicogError

MME_PERCEPTION = ("OCR", "artwork", "celebrity", "color", "count", "existence", "landmark", "position",
                  "posters", "scene")
MME_COGNITION = ("code_reasoning", "commonsense_reasoning", "numerical_calculation", "text_translation")


def read_yes_no(reply: str) -> str:
    """"Yes", "No" or "Unknown" (see the module docstring)."""
    words = strip_punctuation(str(reply).lower()).split()
    yes, no = "yes" in words, "no" in words
    if yes and not no:
        return "Yes"
    if no and not yes:
        return "No"
    return "Unknown"


def _hits(rows: list[Row]) -> dict[str, bool]:
    return {r.index: read_yes_no(r["prediction"]) == r["answer"] for r in rows}


def _details(rows, hits):
    return [{"index": r.index, "extracted": read_yes_no(r["prediction"]), "answer": r["answer"],
             "hit": int(hits[r.index])} for r in rows]


def prf(rows: list[Row]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (Yes = positive), percent, over `rows` (repeats count)."""
    tp = fp = fn = right = 0
    for r in rows:
        truth, said = r["answer"] == "Yes", read_yes_no(r["prediction"]) == "Yes"
        tp += truth and said
        fp += said and not truth
        fn += truth and not said
        right += read_yes_no(r["prediction"]) == r["answer"]
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"acc": 100.0 * right / len(rows) if rows else float("nan"), "precision": 100.0 * precision,
            "recall": 100.0 * recall, "F1": 100.0 * f1}


def _pope_split_rows(rows: list[Row]) -> list[tuple[str | None, Row]]:
    out = []
    for r in rows:
        cell = r.cells.get("category")
        if cell is None:
            out.append((None, r))
            continue
        for part in cell.split(","):
            out.append((None if is_missing(part) else part, r))
    return out


def score_pope(rows: list[Row], benchmark: str = "POPE") -> Scores:
    pairs = _pope_split_rows(rows)
    exploded = [r for _, r in pairs]
    metrics = {f"Overall/{k}": v for k, v in prf(exploded).items()}
    for split in sorted({s for s, _ in pairs if s is not None}):
        metrics.update({f"{split}/{k}": v for k, v in prf([r for s, r in pairs if s == split]).items()})
    by_index = {r.index: r for r in rows}

    def recompute(ids: list[str]) -> float:
        return prf([r for i in ids for _, r in _pope_split_rows([by_index[i]])])["F1"]

    hits = _hits(rows)
    return Scores(benchmark, "yes_no", "Overall/F1", metrics, {i: float(h) for i, h in hits.items()},
                  paired=False, recompute=recompute, details=_details(rows, hits))


def _mme_category(rows: list[Row]) -> float:
    hits = _hits(rows)
    images: dict[str, list[bool]] = {}
    for r in rows:
        if is_missing(r.cells.get("image_path")):
            raise SicogError(f"{r.where('image_path')}: MME pairs questions by image_path; this row has none")
        images.setdefault(r["image_path"], []).append(hits[r.index])
    plus = []
    for path, marks in images.items():
        if len(marks) < 2:
            raise SicogError(f"{rows[0].source}: MME image {path!r} has {len(marks)} question; acc+ pairs two")
        plus.append(marks[0] and marks[1])  # VLMEvalKit multiplies the first two scores of an image
    return 100.0 * sum(hits.values()) / len(rows) + 100.0 * sum(plus) / len(plus)


def _mme_metrics(rows: list[Row]) -> dict[str, float]:
    if any(is_missing(r.cells.get("category")) for r in rows):
        bad = next(r for r in rows if is_missing(r.cells.get("category")))
        raise SicogError(f"{bad.where('category')}: MME needs a category in every row")
    per = {c: _mme_category(g) for c, g in group_by(rows, "category").items()}
    metrics = {"perception": sum(per.get(c, 0.0) for c in MME_PERCEPTION),
               "reasoning": sum(per.get(c, 0.0) for c in MME_COGNITION)}
    metrics["total"] = metrics["perception"] + metrics["reasoning"]
    metrics.update(per)
    return metrics


def score_mme(rows: list[Row], benchmark: str = "MME") -> Scores:
    metrics = _mme_metrics(rows)
    groups: dict[str, list[Row]] = {}
    for r in rows:  # resampling unit: one image of one category (its questions stay together)
        groups.setdefault(f"{r['category']}|{r['image_path']}", []).append(r)

    def recompute(ids: list[str]) -> float:
        chosen, seen = [], {}
        for k, gid in enumerate(ids):
            seen[gid] = seen.get(gid, 0) + 1
            for r in groups[gid]:  # a repeated image becomes a new image with the same answers
                chosen.append(Row({**r.cells, "index": f"{r.index}#{k}", "image_path": f"{gid}#{k}"},
                                  r.source, r.line))
        return _mme_metrics(chosen)["total"]

    hits = _hits(rows)
    items = {gid: sum(hits[r.index] for r in g) / len(g) for gid, g in groups.items()}
    return Scores(benchmark, "yes_no", "total", metrics, items, paired=False, recompute=recompute,
                  details=_details(rows, hits))


def score_yes_no(rows: list[Row], benchmark: str) -> Scores:
    """The default yes/no rating: overall accuracy, then per category and l2-category (percent)."""
    hits = _hits(rows)
    metrics = {"Overall": 100.0 * sum(hits.values()) / len(rows)}
    for column in ("category", "l2-category"):
        for value, group in group_by(rows, column).items():
            metrics[value] = 100.0 * sum(hits[r.index] for r in group) / len(group)
    return Scores(benchmark, "yes_no", "Overall", metrics, {i: float(h) for i, h in hits.items()},
                  details=_details(rows, hits))
