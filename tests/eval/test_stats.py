import math

import numpy as np
import pytest

from sicog.eval.stats import bootstrap_interval, paired_difference, pooled_paired_difference


def test_interval_brackets_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = rng.random(200) < 0.6
    large = rng.random(5000) < 0.6
    lo_s, hi_s = bootstrap_interval(small)
    lo_l, hi_l = bootstrap_interval(large)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3      # width ~ 1/sqrt(n): 5000/200 = 25 -> 5x narrower
    # the normal approximation 1.96 * sqrt(p(1-p)/n) at n = 5000 is about 2.7 points wide
    assert (hi_l - lo_l) == pytest.approx(2 * 1.96 * math.sqrt(0.24 / 5000), rel=0.15)


def test_interval_is_seeded_and_empty_is_nan():
    assert bootstrap_interval([1, 0, 1, 1], seed=3) == bootstrap_interval([1, 0, 1, 1], seed=3)
    assert all(math.isnan(v) for v in bootstrap_interval([]))


def test_paired_difference_cancels_shared_difficulty():
    # b is right on the same questions as a plus nothing else; a adds 100 of 2000 -> +5 points, and the
    # paired interval is far tighter than two independent intervals would suggest
    rng = np.random.default_rng(0)
    base = rng.random(2000) < 0.5
    better = base.copy()
    better[np.flatnonzero(~base)[:100]] = True
    a = {str(i): float(v) for i, v in enumerate(better)}
    b = {str(i): float(v) for i, v in enumerate(base)}
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(0.05)
    assert 0.035 < d["ci95"][0] < 0.05 < d["ci95"][1] < 0.065
    assert d["n"] == 2000 and d["a_only"] == d["b_only"] == 0


def test_paired_difference_uses_common_questions_and_counts_the_rest():
    d = paired_difference({"1": 1, "2": 0, "3": 1}, {"2": 1, "3": 1, "4": 0})
    assert d["n"] == 2 and d["a_only"] == 1 and d["b_only"] == 1
    assert d["difference"] == pytest.approx(-0.5)


def test_pooled_difference_weighs_every_stratum_equally():
    # stratum 1: +10 points on 1000 questions; stratum 2: +0 on 100 -> mean of the two = +5, not +9.1
    a1 = {str(i): float(i % 10 == 0) for i in range(1000)}
    b1 = {str(i): 0.0 for i in range(1000)}
    a2 = {str(i): float(i % 2) for i in range(100)}
    d = pooled_paired_difference([(a1, b1), (a2, a2)])
    assert d["difference"] == pytest.approx(0.05) and d["strata"] == 2 and d["n"] == 1100
    assert 0.035 < d["ci95"][0] < 0.05 < d["ci95"][1] < 0.065
    assert pooled_paired_difference([({"1": 1.0}, {"2": 1.0})])["strata"] == 0


def test_t_interval_over_seeds_matches_the_t_distribution():
    from sicog.eval.stats import t_interval, t_quantile_975

    # three seeds, the sicog - base differences: mean 9.0, s = 6.48, t_{.975,2} = 4.303
    r = t_interval([0.05, 0.055, 0.165])
    assert r["n"] == 3 and r["df"] == 2 and abs(r["mean"] - 0.09) < 1e-12
    sd = (((0.05 - 0.09) ** 2 + (0.055 - 0.09) ** 2 + (0.165 - 0.09) ** 2) / 2) ** 0.5
    assert abs(r["ci95"][1] - (0.09 + 4.303 * sd / 3 ** 0.5)) < 1e-12
    assert abs((r["ci95"][0] + r["ci95"][1]) / 2 - r["mean"]) < 1e-12
    # 4 degrees of freedom (five evaluation seeds): 2.776; the expansion beyond the table is close
    assert t_quantile_975(4) == 2.776 and abs(t_quantile_975(40) - 2.021) < 0.002
    assert abs(t_quantile_975(120) - 1.980) < 0.002
    assert t_interval([0.3])["ci95"] is None and t_interval([])["mean"] is None
    assert all(abs(v - 0.2) < 1e-12 for v in t_interval([0.2, 0.2, 0.2])["ci95"])  # no spread: no width
