"""OCRBench as VLMEvalKit scores it: counts of right answers per category, and the final score.

An item is right when any of its answers (the Python list in `answer`) occurs in the reply:
for "Handwritten Mathematical Expression Recognition" after removing every space and newline
from both (case kept), for every other category after lower-casing, trimming and turning
newlines into spaces. Reported: the count per category, "Text Recognition" = the six
recognition categories together, and "Final Score" = all right answers (of 1000 in the real
benchmark; "Final Score Norm" = Final Score / 10).
"""

from __future__ import annotations

from sicog.eval.scores.result import Scores
from sicog.eval.scores.table import Row, answers_of
from sicog.utils.io import SicogError

TEXT_RECOGNITION = ("Regular Text Recognition", "Irregular Text Recognition", "Artistic Text Recognition",
                    "Handwriting Recognition", "Digit String Recognition", "Non-Semantic Text Recognition")
OTHERS = ("Scene Text-centric VQA", "Doc-oriented VQA", "Key Information Extraction",
          "Handwritten Mathematical Expression Recognition")
CATEGORIES = TEXT_RECOGNITION + OTHERS
FORMULA = "Handwritten Mathematical Expression Recognition"


def _squeeze(text: str) -> str:
    return text.strip().replace("\n", " ").replace(" ", "")


def _plain(text: str) -> str:
    return text.lower().strip().replace("\n", " ")


def ocr_hit(answers: list[str], reply: str, category: str) -> bool:
    clean = _squeeze if category == FORMULA else _plain
    reply = clean(reply)
    return any(clean(a) in reply for a in answers)


def score_ocrbench(rows: list[Row], benchmark: str = "OCRBench") -> Scores:
    counts = dict.fromkeys(CATEGORIES, 0)
    items = {}
    for r in rows:
        category = r.cells.get("category")
        if category not in counts:
            raise SicogError(f"{r.where('category')}: {category!r} is not an OCRBench category "
                             f"({', '.join(CATEGORIES)})")
        hit = ocr_hit(answers_of(r), r["prediction"], category)
        counts[category] += hit
        items[r.index] = float(hit)
    metrics = {"Text Recognition": float(sum(counts[c] for c in TEXT_RECOGNITION))}
    metrics.update({c: float(counts[c]) for c in OTHERS})
    metrics["Final Score"] = float(sum(counts.values()))
    metrics["Final Score Norm"] = metrics["Final Score"] / 10
    metrics.update({f"count/{c}": float(counts[c]) for c in TEXT_RECOGNITION})
    details = [{"index": r.index, "category": r["category"], "hit": int(items[r.index])} for r in rows]
    return Scores(benchmark, "ocrbench", "Final Score", metrics, items, scale=float(len(rows)), details=details)
