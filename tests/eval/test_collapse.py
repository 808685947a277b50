"""Collapse signals of a set of labels: distinct-n, lengths, answer entropy, copied share."""

import math

import pytest

from sicog.eval.collapse import answer_distribution, collapse_signals, copied_share, distinct_n, length_stats


def test_distinct_n_counts_repeated_ngrams_across_labels():
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)  # (a b) twice
    assert distinct_n(["Red, red!"], 1) == pytest.approx(1 / 2)  # case and punctuation ignored
    assert distinct_n(["one"], 2) is None and distinct_n([], 1) is None


def test_length_stats():
    assert length_stats(["a b", "a b c d", "a b c d e f"]) == {"mean_words": 4.0, "median_words": 4}
    assert length_stats([]) == {"mean_words": None, "median_words": None}


def test_answer_distribution_entropy_and_top_share():
    texts = ["Step 4: so. The answer is 2.", "The answer is 3.", "The answer is (2).", "no answer here"]
    d = answer_distribution(texts)
    assert d["answered"] == 3 and d["distinct_answers"] == 2 and d["top_answer"] == "2"
    p = 2 / 3
    assert d["answer_entropy_bits"] == pytest.approx(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)))
    assert d["top_answer_share"] == pytest.approx(2 / 3)
    collapsed = answer_distribution(["The answer is 0."] * 5)
    assert collapsed["answer_entropy_bits"] == 0.0 and collapsed["top_answer_share"] == 1.0
    assert answer_distribution(["nothing"])["answer_entropy_bits"] is None


def test_copied_share_matches_whole_labels_whitespace_aside():
    assert copied_share(["a  b", "c", "d"], ["a b", "x"]) == pytest.approx(1 / 3)
    assert copied_share(["a"], None) is None  # round 1: nothing to copy from


def test_collapse_signals_has_every_signal():
    s = collapse_signals(["The answer is 1.", "The answer is 2."], ["The answer is 1."], answers=True)
    assert s["labels"] == 2 and s["copied_share"] == 0.5 and s["distinct_answers"] == 2
    assert "answer_entropy_bits" not in collapse_signals(["a"])


def test_distinct_n_is_measured_over_a_fixed_number_of_labels():
    from sicog.eval.collapse import DISTINCT_LABELS

    texts = [f"label {i} words" for i in range(DISTINCT_LABELS)]
    more = texts + ["label 0 words"] * 100  # repeats after the first DISTINCT_LABELS do not count
    assert collapse_signals(more)["distinct_2"] == collapse_signals(texts)["distinct_2"]
    assert collapse_signals(more)["labels"] == DISTINCT_LABELS + 100
