"""Which scorer a benchmark gets, by its VLMEvalKit dataset name (as VLMEvalKit decides it).

| name contains | scorer |
|---|---|
| POPE | yes/no, POPE's F1 per split (`yorn.score_pope`) |
| MME (not MMEReasoning etc.: the name is exactly MME) | yes/no, perception + cognition (`yorn.score_mme`) |
| HallusionBench, AMBER, … any other name given kind `yes_no` | yes/no accuracy (`yorn.score_yes_no`) |
| OCRBench | per-category counts and final score (`ocrbench.score_ocrbench`) |
| DocVQA, InfoVQA, ChartQA, TextVQA, OCRVQA, GQA | open VQA (`vqa.score_vqa`) |
| MMVet | LLM-graded (`mmvet.score_mmvet`) |
| MathVista | LLM-extracted (`mathvista.score_mathvista`) |
| anything else (MMBench*, MMStar, AI2D*, ScienceQA*, RealWorldQA, a custom MCQ TSV) | multiple choice, circular for MMBench (`mcq.score_mcq`) |

`kind` overrides the choice for a custom name: mcq, yes_no, vqa, ocrbench, mmvet, mathvista.
"""

from __future__ import annotations

from pathlib import Path

from sicog.eval.scores import mathvista, mcq, mmvet, ocrbench, vqa, yorn
from sicog.eval.scores.judge import Judge, JudgeCache
from sicog.eval.scores.result import Scores
from sicog.eval.scores.table import Row, read_table
from sicog.utils.io import SicogError

KINDS = ("mcq", "yes_no", "vqa", "ocrbench", "mmvet", "mathvista")
JUDGED = ("mmvet", "mathvista")
VQA_NAMES = ("DocVQA", "InfoVQA", "ChartQA", "TextVQA", "OCRVQA", "GQA")
YES_NO_NAMES = ("POPE", "HallusionBench", "AMBER", "VSR-zeroshot")

#: columns a prediction table of each kind must have
REQUIRED = {
    "mcq": ("index", "prediction", "answer", "A", "B"),
    "yes_no": ("index", "prediction", "answer"),
    "vqa": ("index", "prediction", "answer"),
    "ocrbench": ("index", "prediction", "answer", "category"),
    "mmvet": ("index", "prediction", "answer", "question", "category"),
    "mathvista": ("index", "prediction", "answer", "question", "question_type", "answer_type", "answer_option",
                  "choices", "task", "skills"),
}


def kind_of(benchmark: str, kind: str | None = None) -> str:
    """The scorer kind of a benchmark name (`kind` when given)."""
    if kind:
        if kind not in KINDS:
            raise SicogError(f"benchmark {benchmark!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
        return kind
    if "MMVet" in benchmark:
        return "mmvet"
    if "MathVista" in benchmark:
        return "mathvista"
    if "OCRBench" in benchmark:
        return "ocrbench"
    if benchmark == "MME" or any(n in benchmark for n in YES_NO_NAMES):
        return "yes_no"
    if any(n in benchmark for n in VQA_NAMES):
        return "vqa"
    return "mcq"


def score_rows(rows: list[Row], benchmark: str, kind: str | None = None, judge: Judge | None = None,
               cache: JudgeCache | None = None, workers: int = 4, progress: bool = True) -> Scores:
    """Score prediction rows as VLMEvalKit scores the dataset `benchmark`."""
    if not rows:
        raise SicogError(f"benchmark {benchmark!r}: no prediction rows")
    kind = kind_of(benchmark, kind)
    if kind == "mcq":
        return mcq.score_mcq(rows, benchmark)
    if kind == "yes_no":
        if "POPE" in benchmark:
            return yorn.score_pope(rows, benchmark)
        if benchmark == "MME":
            return yorn.score_mme(rows, benchmark)
        return yorn.score_yes_no(rows, benchmark)
    if kind == "vqa":
        return vqa.score_vqa(rows, benchmark)
    if kind == "ocrbench":
        return ocrbench.score_ocrbench(rows, benchmark)
    scorer = mmvet.score_mmvet if kind == "mmvet" else mathvista.score_mathvista
    return scorer(rows, benchmark, judge=judge, cache=cache, workers=workers, progress=progress)


def score_file(path: str | Path, benchmark: str, kind: str | None = None, **kwargs) -> Scores:
    """Score a VLMEvalKit prediction table (`.xlsx`/`.tsv`)."""
    kind = kind_of(benchmark, kind)
    return score_rows(read_table(path, REQUIRED[kind]), benchmark, kind, **kwargs)
