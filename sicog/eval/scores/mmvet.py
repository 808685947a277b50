"""MM-Vet as VLMEvalKit scores it: an LLM grades each reply 0.0-1.0 against the ground truth.

Per item the judge gets MM-Vet's grader prompt followed by the row as a table line
`question | answer | prediction | ` (the answer with spaces around <AND>/<OR>), at most 2048
tokens. Up to five tries, at temperature 0, 0.5, 1.0, 1.5, 2.0: the first answer that reads as a
number (Python `float`) in [0, 1] is the score; after five failures the score is 0.

Reported (percent): "Overall" (the mean score), each capability rec/ocr/know/gen/spat/math (the
items whose `category` contains it) and each capability combination (`category` with "," → "_").
"""

from __future__ import annotations

from sicog.eval.scores.judge import Judge, JudgeCache, judge_all, need_judge, verdict_key
from sicog.eval.scores.judge_prompts import judge_prompts, mmvet_tail
from sicog.eval.scores.result import Scores
from sicog.eval.scores.table import Row

CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
TRIES = 5
MAX_TOKENS = 2048


def grader_prompt(row: Row) -> str:
    answer = row["answer"].replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")
    return judge_prompts()["mmvet_prefix"] + mmvet_tail(row["question"], answer, row["prediction"])


def _grade(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def grade(judge: Judge | None, row: Row) -> dict:
    prompt = grader_prompt(row)
    tries = []
    for k in range(TRIES):
        text = need_judge(judge, "MMVet").ask(prompt, temperature=0.5 * k, max_tokens=MAX_TOKENS)
        value = _grade(text)
        tries.append(text)
        if value is not None:
            return {"score": value, "tries": tries}
    return {"score": 0.0, "tries": tries}


def score_mmvet(rows: list[Row], benchmark: str = "MMVet", judge: Judge | None = None,
                cache: JudgeCache | None = None, workers: int = 4, progress: bool = True) -> Scores:
    model = judge.settings.model if judge is not None else ""
    verdicts = judge_all(rows, grade, benchmark, judge, cache or JudgeCache(None),
                         lambda r: verdict_key(model, grader_prompt(r)), workers, progress)
    items = {r.index: float(verdicts[r.index]["score"]) for r in rows}
    total: dict[str, int] = {}
    points: dict[str, float] = {}
    combos: list[str] = []
    for r in rows:
        category = r["category"]
        keys = [c for c in CAPABILITIES if c in category] + ["Overall", category.replace(",", "_")]
        if keys[-1] not in combos:
            combos.append(keys[-1])
        for k in keys:
            total[k] = total.get(k, 0) + 1
            points[k] = points.get(k, 0.0) + items[r.index]
    metrics = {k: (100.0 * points[k] / total[k] if total.get(k) else float("nan"))
               for k in (*CAPABILITIES, "Overall")}
    metrics.update({f"combo/{k}": 100.0 * points[k] / total[k] for k in combos})
    details = [{"index": r.index, **verdicts[r.index]} for r in rows]
    return Scores(benchmark, "judged/mmvet", "Overall", metrics, items, details=details)
