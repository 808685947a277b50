"""The curation report: stats.json (the keep rule and the score cut it gave, keep rates, score
quantiles, failures, degenerate items, throughput) and best_scores.png (histogram of the best
scores with the cut marked)."""

from __future__ import annotations

import io
import logging
import os
from typing import Sequence

import numpy as np

from sicog.stages.curation.items import FAILURE_KINDS
from sicog.utils.io import atomic_write

logger = logging.getLogger(__name__)

PAPER_THRESHOLDS = (0.8, 0.85, 0.9)
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
STATS_NAME = "stats.json"
HISTOGRAM_NAME = "best_scores.png"


def _threshold_key(t: float) -> str:
    return f"{t:g}"


def cut_text(stats: dict) -> str:
    """The keep rule of a stats dict in words: 'threshold 0.9' or 'keep fraction 0.75 (score cut 0.8)'."""
    if stats.get("keep_fraction") is not None:
        cut = stats.get("score_cut")
        return f"keep fraction {stats['keep_fraction']:g} (score cut {'none' if cut is None else f'{cut:g}'})"
    return f"threshold {stats['threshold']:g}"


def build_stats(results: Sequence[dict], *, rule: dict, score_cut: float | None, timing: dict,
                settings: dict) -> dict:
    """Aggregate per-item result records (see runner.result_record, with `kept` decided) into the
    stats dict; `rule`: CurateConfig.cut(), `score_cut`: the lowest best score kept."""
    threshold = rule.get("threshold")
    n = len(results)
    best = np.array([r["score"] for r in results if r["outcome"] == "scored"], dtype=np.float64)
    kept = sum(1 for r in results if r["kept"])
    at = {}
    for t in sorted({*PAPER_THRESHOLDS, *([threshold] if threshold is not None else [])}):
        k = int((best >= t).sum())
        at[_threshold_key(t)] = {"kept": k, "dropped": n - k, "keep_rate": round(k / n, 4) if n else None}
    failures = {kind: 0 for kind in FAILURE_KINDS}
    for r in results:
        for kind, c in r["failures"].items():
            failures[kind] = failures.get(kind, 0) + c
    outcomes = {o: sum(1 for r in results if r["outcome"] == o)
                for o in ("scored", "no_candidates", "all_extractions_failed", "too_few_valid")}
    quant = None
    if best.size:
        quant = {"count": int(best.size), "mean": round(float(best.mean()), 6),
                 "min": round(float(best.min()), 6), "max": round(float(best.max()), 6)}
        quant.update({f"q{int(q * 100):02d}": round(float(np.quantile(best, q)), 6) for q in QUANTILES})
    candidates = sum(r["n_candidates"] for r in results)
    enc_s, total_s = timing.get("encode_seconds", 0.0), timing.get("total_seconds", 0.0)
    texts = timing.get("texts_encoded", 0)
    return {
        "items": n,
        "candidates": candidates,
        "kept": kept,
        "dropped": n - kept,
        "threshold": threshold,
        "keep_fraction": rule.get("keep_fraction"),
        "score_cut": score_cut,
        "keep_rate": round(kept / n, 4) if n else None,
        "at_threshold": at,
        "best_score_quantiles": quant,
        "extraction_failures": sum(failures.values()),
        "extraction_failures_by_kind": failures,
        "items_with_extraction_failures": sum(1 for r in results if any(r["failures"].values())),
        "degenerate": {
            "no_candidates": outcomes["no_candidates"],
            "all_extractions_failed": outcomes["all_extractions_failed"],
            "too_few_valid_candidates": outcomes["too_few_valid"],
            "single_candidate_records": sum(1 for r in results if r["n_candidates"] == 1),
            "identical_candidates": sum(1 for r in results if r["identical"]),
            "below_threshold": sum(1 for r in results if r["outcome"] == "scored" and not r["kept"]),
        },
        "throughput": {
            "candidates_this_run": timing.get("candidates", 0),
            "texts_encoded": texts,
            "unique_fraction": round(texts / timing["valid_candidates"], 4)
            if timing.get("valid_candidates") else None,
            "encode_seconds": round(enc_s, 3),
            "score_seconds": round(timing.get("score_seconds", 0.0), 3),
            "total_seconds": round(total_s, 3),
            "encode_fraction_of_total": round(enc_s / total_s, 4) if total_s else None,
            "texts_per_s": round(texts / enc_s, 1) if enc_s else None,
            "candidates_per_s": round(timing.get("candidates", 0) / total_s, 1) if total_s else None,
            "per_rank": timing.get("per_rank", []),
        },
        **settings,
    }


def plot_histogram(best_scores: Sequence[float], rule: dict, score_cut: float | None, kept: int,
                   path: str | os.PathLike, title: str = "") -> None:
    """PNG histogram of best scores, the cut as a red line (the threshold, or the score cut of a keep
    fraction), the paper's cut-offs dotted."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    scores = np.asarray(best_scores, dtype=np.float64)
    line = rule.get("threshold", score_cut)
    if scores.size:
        lo = min(float(scores.min()), 0.8, *([line] if line is not None else [])) - 0.01
        ax.hist(scores, bins=50, range=(lo, 1.0 + 1e-6), color="#4c72b0")
    for t in PAPER_THRESHOLDS:
        if t != line:
            ax.axvline(t, color="grey", linestyle=":", linewidth=1)
    if line is not None:
        ax.axvline(line, color="red", linewidth=2, label=f"{cut_text({**rule, 'score_cut': score_cut})}: "
                                                         f"{kept}/{scores.size} kept")
    ax.set_xlabel("best self-consistency score (mean cosine, self included)")
    ax.set_ylabel("items")
    ax.set_title(title or "curation: best score per item")
    if line is not None:
        ax.legend(loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    with atomic_write(path, "wb") as fh:
        fh.write(buf.getvalue())
