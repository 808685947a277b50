"""Uncertainty of benchmark figures: bootstrap intervals over questions, paired differences.

A benchmark accuracy is a mean over a finite sample of questions; with n = 300 one standard
error is about 2.7 points, so a 2-point gap between two models means nothing. These helpers
resample the *questions* (the unit the benchmark draws): an arm's accuracy gets a percentile
interval, and two arms evaluated on the same questions get a *paired* interval of their
difference (both resampled with the same indices, so the questions' own difficulty cancels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: resamples per interval: the percentile ends move by < 0.1 point between seeds at n = 2,000
N_BOOTSTRAP = 2000


def bootstrap_interval(values: Sequence[float], n_boot: int = N_BOOTSTRAP, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (e.g. per-question 0/1 hits) over resampled questions."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    means = x[idx].mean(axis=1)
    tail = (1.0 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail)))


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], n_boot: int = N_BOOTSTRAP,
                      seed: int = 0, level: float = 0.95) -> dict:
    """Mean of a − b over the questions both answered, with its paired bootstrap interval.

    Returns {"difference", "ci95": [lo, hi], "n", "a_only", "b_only"}; `a_only`/`b_only` count
    questions one side has and the other lacks (they are left out, and said so).
    """
    common = sorted(set(a) & set(b))
    diff = [float(a[k]) - float(b[k]) for k in common]
    lo, hi = bootstrap_interval(diff, n_boot=n_boot, seed=seed, level=level)
    return {"difference": float(np.mean(diff)) if diff else float("nan"), "ci95": [lo, hi], "n": len(common),
            "a_only": len(set(a) - set(b)), "b_only": len(set(b) - set(a))}


def pooled_paired_difference(strata: Sequence[tuple[Mapping[str, float], Mapping[str, float]]],
                             n_boot: int = N_BOOTSTRAP, seed: int = 0, level: float = 0.95) -> dict:
    """Mean over strata (e.g. seeds, each its own benchmark) of the paired a − b difference.

    The interval resamples questions within each stratum and averages the strata's means, so
    every seed keeps its weight (a stratified bootstrap): it covers question-sampling noise,
    not the spread between seeds (report that separately).
    """
    diffs = []
    for a, b in strata:
        common = sorted(set(a) & set(b))
        if common:
            diffs.append(np.asarray([float(a[k]) - float(b[k]) for k in common], dtype=np.float64))
    if not diffs:
        return {"difference": float("nan"), "ci95": [float("nan"), float("nan")], "strata": 0, "n": 0}
    rng = np.random.default_rng(seed)
    boots = np.zeros(n_boot)
    for d in diffs:
        boots += d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    boots /= len(diffs)
    tail = (1.0 - level) / 2
    return {"difference": float(np.mean([d.mean() for d in diffs])),
            "ci95": [float(np.quantile(boots, tail)), float(np.quantile(boots, 1.0 - tail))],
            "strata": len(diffs), "n": int(sum(d.size for d in diffs))}


#: two-sided 95 % quantiles of Student's t, t_{0.975, df}, df = 1 … 30 (beyond: the normal's 1.96 plus
#: the first term of the Cornish-Fisher expansion, within 0.002 of the exact value)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile_975(df: int) -> float:
    """t_{0.975, df}: the table up to 30 degrees of freedom, an expansion beyond (no scipy needed)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df)


def t_interval(values: Sequence[float]) -> dict:
    """Mean of `values` (e.g. one figure per seed) with its 95 % t interval, mean ± t_{0.975, n-1} s / √n.

    The spread between the values is the noise it covers (another seed: another world, sample and
    training), unlike the bootstrap intervals above, which resample the questions of one benchmark.
    Returns {"mean", "ci95": [lo, hi], "n", "df"}; fewer than two values give no interval (None)."""
    x = [float(v) for v in values if v is not None]
    if not x:
        return {"mean": None, "ci95": None, "n": 0, "df": None}
    mean = sum(x) / len(x)
    if len(x) < 2:
        return {"mean": mean, "ci95": None, "n": 1, "df": None}
    sd = (sum((v - mean) ** 2 for v in x) / (len(x) - 1)) ** 0.5
    half = t_quantile_975(len(x) - 1) * sd / len(x) ** 0.5
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": len(x), "df": len(x) - 1}
