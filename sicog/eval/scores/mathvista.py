"""MathVista as VLMEvalKit scores it: the answer is read from the reply, by rule when it can be,
else by an LLM judge that extracts it, then compared with the truth by the question's type.

Columns: `question` (the full prompt text VLMEvalKit stores), `answer`, `question_type`
(multi_choice / free_form), `answer_type` (integer / float / text / list), `answer_option` (the
right letter of a multiple-choice row), `choices` (a Python list of the option texts), `task`,
`skills` (a Python list, or one skill).

- Comparing a reading with the truth: multiple choice → the letter VLMEvalKit's exact matching
  reads from it (`sicog.eval.vlmevalkit_matching`, options A, B, … from `choices`) equals
  `answer_option`; integer → Python `int` of both are equal; float → `float` of both are equal;
  any other type is never right (VLMEvalKit compares the text "None" with the answer there: kept).
  A reading that does not convert is wrong.
- First the reply itself is read ("prefetch"): for multiple choice, any letter VLMEvalKit reads
  from it (right or wrong, "Z" for a refusal) is the reading and the judge is not asked; for
  integer/float questions, the reply is the reading when it converts and equals the truth (an
  answer 0 is not truthy, so it goes to the judge, as in VLMEvalKit).
- Otherwise the judge gets the extraction prompt (task line, five examples, the question,
  "Model respone: " + reply + "Extracted answer:"), at most 128 tokens, up to five tries at
  temperature 0, 0.5, …; the first answer that is not the failure text is the reading ("" after
  five failures).

Reported (percent): "Overall" accuracy, and per `task` and per skill; with `tot`, `prefetch` and
`hit` counts.
"""

from __future__ import annotations

import ast

from sicog.eval.scores.judge import FAIL_MSG, Judge, JudgeCache, judge_all, need_judge, verdict_key
from sicog.eval.scores.judge_prompts import judge_prompts, mathvista_tail
from sicog.eval.scores.result import Scores
from sicog.eval.scores.table import Row
from sicog.eval.vlmevalkit_matching import vlmevalkit_choice, vlmevalkit_infer

TRIES = 5
MAX_TOKENS = 128
PREFETCHED = "Prefetch succeed"


def extraction_prompt(row: Row) -> str:
    return judge_prompts()["mathvista_prefix"] + mathvista_tail(row["question"], row["prediction"])


def _options(row: Row) -> dict[str, str]:
    texts = ast.literal_eval(row["choices"])
    return {chr(ord("A") + k): str(t) for k, t in enumerate(texts)}


def reading_of(row: Row, response):
    """(the reading as VLMEvalKit holds it, the truth it is compared with)."""
    if row["question_type"] == "multi_choice":
        return vlmevalkit_choice(str(response), _options(row)), row["answer_option"]
    kind = row["answer_type"]
    convert = int if kind == "integer" else float if kind == "float" else None
    if convert is None:
        return "None", row["answer"]
    try:
        got = convert(response)
    except (ValueError, TypeError):
        return None, row["answer"]
    try:
        return got, convert(row["answer"])
    except (ValueError, TypeError):
        return got, row["answer"]


def is_right(row: Row, response) -> bool:
    got, want = reading_of(row, response)
    return got == want


def _prefetch(row: Row):
    if row["question_type"] == "multi_choice":
        return vlmevalkit_infer(row["prediction"], _options(row))
    got, want = reading_of(row, row["prediction"])
    return got if got == want else False


def extract(judge: Judge | None, row: Row) -> dict:
    early = _prefetch(row)
    if early:
        return {"res": early if isinstance(early, str) else repr(early), "log": PREFETCHED}
    prompt = extraction_prompt(row)
    for k in range(TRIES):
        text = need_judge(judge, "MathVista").ask(prompt, temperature=0.5 * k, max_tokens=MAX_TOKENS)
        if FAIL_MSG not in text:
            return {"res": text, "log": "Succeed"}
    return {"res": "", "log": "All 5 retries failed."}


def _skills(row: Row) -> list[str]:
    try:
        value = ast.literal_eval(row["skills"])
    except (ValueError, SyntaxError):
        return [row["skills"]]
    return list(value) if isinstance(value, (list, tuple)) else [row["skills"]]


def score_mathvista(rows: list[Row], benchmark: str = "MathVista_MINI", judge: Judge | None = None,
                    cache: JudgeCache | None = None, workers: int = 4, progress: bool = True) -> Scores:
    model = judge.settings.model if judge is not None else ""
    verdicts = judge_all(rows, extract, benchmark, judge, cache or JudgeCache(None),
                         lambda r: verdict_key(model, extraction_prompt(r)), workers, progress)
    tot: dict[str, int] = {}
    fetched: dict[str, int] = {}
    hit: dict[str, int] = {}
    items = {}
    for r in rows:
        v = verdicts[r.index]
        keys = ["Overall", r["task"], *_skills(r)]
        right = is_right(r, v["res"])
        items[r.index] = float(right)
        for k in keys:
            tot[k] = tot.get(k, 0) + 1
            fetched[k] = fetched.get(k, 0) + (v["log"] == PREFETCHED)
            hit[k] = hit.get(k, 0) + right
    metrics = {k: 100.0 * hit[k] / tot[k] for k in tot}
    metrics.update({f"tot/{k}": float(tot[k]) for k in tot})
    metrics.update({f"prefetch/{k}": float(fetched[k]) for k in tot})
    details = [{"index": r.index, **verdicts[r.index], "hit": int(items[r.index])} for r in rows]
    return Scores(benchmark, "judged/mathvista", "Overall", metrics, items, details=details)
