"""Paired comparisons of arms on the same benchmark questions (report.json `comparisons`).

Arms are evaluated on identical questions, so their difference is estimated per question and
resampled in pairs (sicog.eval.stats.paired_difference): much tighter than comparing two
independent intervals. The per-question hits come from the headline predictions file that
`sicog evaluate` wrote (`files.predictions` in its summary.json).
"""

from __future__ import annotations

import json
from pathlib import Path

from sicog.data.records import iter_json_objects
from sicog.eval.outputs import read_summary
from sicog.eval.stats import paired_difference

#: (arm, against): what the demo and the paper compare — does self-generated pre-training help, does
#: curation help, and how far perfect labels would go
COMPARISONS = (("sicog", "base"), ("sicog", "uncurated"), ("oracle", "base"), ("sicog", "oracle"),
               # the controls of the mechanism (sicog.pipeline.arms): selection against chance at equal
               # parseable data, correct against as-often-wrong labels, self-generated data beyond the
               # seed labels, stage 1.5 against as many more stage-2 steps
               ("sicog", "uncurated_valid"), ("oracle", "oracle_noised"), ("sicog", "annotated"),
               ("annotated", "base"), ("sicog", "base_long"), ("oracle", "base_long"),
               # post-training arms (when the run has them): what DPO adds, and what stage 1.5 adds under DPO
               ("sicog_dpo", "sicog"), ("sicog_dpo", "base_dpo"))


def per_question_hits(eval_dir: str | None) -> dict[str, float] | None:
    """{question index: 1.0 / 0.0} of the headline scoring, or None when the evaluation has none."""
    summary = read_summary(eval_dir) if eval_dir else None
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


def benchmark_scores(eval_dir: str | None) -> dict[str, dict]:
    """{name: scores.json} of the `benchmarks:` list an evaluation ran (sicog.eval.benchmark_list)."""
    summary = read_summary(eval_dir) if eval_dir else None
    out = {}
    for name, entry in ((summary or {}).get("benchmarks") or {}).items():
        folder = Path(eval_dir) / entry.get("folder", f"benchmarks/{name}")
        try:
            out[name] = {**json.loads((folder / "scores.json").read_text(encoding="utf-8")), "dir": folder}
        except (OSError, ValueError):
            continue
    return out


def _resampled(name: str, sa: dict, sb: dict, n_boot: int, seed: int) -> dict:
    """Bootstrap of a figure that is no item mean (POPE's F1, MME's sums): the same resampled items
    for both arms, the figure recomputed on each side, the percentiles of the difference."""
    import numpy as np

    from sicog.eval.benchmark_list import rescore

    a, b = rescore(sa["dir"], name, sa["kind_key"]), rescore(sb["dir"], name, sb["kind_key"])
    common = sorted(set(a.items) & set(b.items))
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        ids = [common[i] for i in rng.integers(0, len(common), size=len(common))]
        diffs.append(a.recompute(ids) - b.recompute(ids))
    return {"difference": a.value - b.value, "ci95": [float(np.quantile(diffs, 0.025)),
                                                      float(np.quantile(diffs, 0.975))],
            "n": len(common), "method": "bootstrap"}


def benchmark_comparisons(eval_dirs: dict[str, str | None], pairs=COMPARISONS, n_boot: int = 1000,
                          seed: int = 0) -> list[dict]:
    """Per pair of arms and per listed benchmark: the headline's difference and its 95 % interval,
    paired over items when the headline is an item mean (`paired` in scores.json), otherwise a
    paired bootstrap of the recomputed figure."""
    scores = {arm: benchmark_scores(d) for arm, d in eval_dirs.items()}
    out = []
    for arm, against in pairs:
        sa, sb = scores.get(arm) or {}, scores.get(against) or {}
        for name in [n for n in sa if n in sb]:
            a, b = sa[name], sb[name]
            if a["paired"] and b["paired"]:
                d = paired_difference(a["items"], b["items"], n_boot=n_boot, seed=seed)
                scale = float(a.get("scale", 100.0))
                d = {"difference": d["difference"] * scale, "ci95": [v * scale for v in d["ci95"]], "n": d["n"],
                     "method": "paired"}
            else:
                kind = a["kind"].split("/")[-1] if a["kind"].startswith("judged/") else a["kind"].split("/")[0]
                d = _resampled(name, {**a, "kind_key": kind}, {**b, "kind_key": kind}, n_boot, seed)
            out.append({"arm": arm, "against": against, "benchmark": name, "headline": a["headline"], **d})
    return out
