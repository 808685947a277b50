"""Paired comparisons of arms on the same benchmark questions (report.json `comparisons`).

Arms are evaluated on identical questions, so their difference is estimated per question and
resampled in pairs (sicog.eval.stats.paired_difference): much tighter than comparing two
independent intervals. The per-question hits come from the headline predictions file that
`sicog evaluate` wrote (`files.predictions` in its summary.json).
"""

from __future__ import annotations

from pathlib import Path

from sicog.data.records import iter_json_objects
from sicog.eval.stats import paired_difference
from sicog.pipeline.data_steps import read_eval_summary

#: (arm, against): what the demo and the paper compare — does self-generated pre-training help, does
#: curation help, and how far perfect labels would go
COMPARISONS = (("sicog", "base"), ("sicog", "uncurated"), ("oracle", "base"), ("sicog", "oracle"),
               # post-training arms (when the run has them): what DPO adds, and what stage 1.5 adds under DPO
               ("sicog_dpo", "sicog"), ("sicog_dpo", "base_dpo"))


def per_question_hits(eval_dir: str | None) -> dict[str, float] | None:
    """{question index: 1.0 / 0.0} of the headline scoring, or None when the evaluation has none."""
    summary = read_eval_summary(eval_dir) if eval_dir else None
    name = ((summary or {}).get("files") or {}).get("predictions")
    if not name or not (Path(eval_dir) / name).is_file():
        return None
    return {str(rec["index"]): float(bool(rec.get("correct")))
            for _line, rec in iter_json_objects(Path(eval_dir) / name) if "index" in rec}


def paired_comparisons(eval_dirs: dict[str, str | None], pairs=COMPARISONS) -> list[dict]:
    """[{arm, against, difference, ci95, n, ...}] for each pair whose two evaluations exist."""
    hits = {arm: per_question_hits(d) for arm, d in eval_dirs.items()}
    out = []
    for arm, against in pairs:
        if hits.get(arm) is not None and hits.get(against) is not None:
            out.append({"arm": arm, "against": against, **paired_difference(hits[arm], hits[against])})
    return out
