"""Curation scoring and extraction, with a tiny bag-of-words encoder (no model needed)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sicog.data import formats
from sicog.stages.curation.items import CandidateItem, extract, extract_all
from sicog.stages.curation.scoring import (
    item_rng,
    keep_decisions,
    l2_normalise,
    lower_half,
    mean_cosine_scores,
    rank_candidates,
    score_items,
)


class BagOfWords:
    """Word-count vectors over a growing vocabulary; records every encode call."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self.calls: list[list[str]] = []

    def encode(self, texts, batch_size, progress=False):
        self.calls.append(list(texts))
        rows = []
        for t in texts:
            for w in re.findall(r"\w+", t.lower()):
                self.vocab.setdefault(w, len(self.vocab))
        for t in texts:
            v = np.zeros(max(len(self.vocab), 1), np.float32)
            for w in re.findall(r"\w+", t.lower()):
                v[self.vocab[w]] += 1
            rows.append(v)
        return np.stack(rows)


def _item(cands, mode="caption", item_id="x"):
    it = CandidateItem(id=item_id, where="f:1", index=0,
                       record={"id": item_id, "prompt": "p", "candidates": cands}, mode=mode)
    extract_all([it])
    return it


def _score(items, **kw):
    kw = {"batch_size": 8, "seed": 0, **kw}
    return score_items(items, BagOfWords(), **kw)[0]


def test_mean_cosine_matches_brute_force_include_self():
    rng = np.random.default_rng(0)
    emb = l2_normalise(rng.normal(size=(7, 5)))
    text_index = np.array([0, 1, 2, 3, 3, 4, 5, 6])
    item_of = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    got = mean_cosine_scores(emb, text_index, item_of, 2)
    for g in range(2):
        e = emb[text_index[item_of == g]]
        np.testing.assert_allclose(got[item_of == g], (e @ e.T).mean(axis=1), rtol=1e-6)


def test_consensus_candidate_is_chosen_and_outlier_ranked_last():
    cands = ["red circle left", "a red circle on the left", "the red circle is left",
             "red circle at left", "blue square right top corner"]
    (res,) = _score([_item(cands)])
    assert res.chosen_index in (0, 1, 2, 3)
    assert rank_candidates(res.scores)[-1] == 4
    assert res.outcome == "scored"


def test_ties_go_to_lowest_index_and_identical_are_flagged():
    (res,) = _score([_item(["same text", "other words here", "same text"])])
    assert res.scores[0] == res.scores[2]
    assert res.chosen_index == 0
    (res,) = _score([_item(["a b", "a b", "a b"])])
    assert res.identical and res.chosen_index == 0 and res.score == pytest.approx(1.0)
    assert keep_decisions([res.score], threshold=0.9) == ([True], res.score)  # 1.0 >= 0.9


def test_lower_half_definition():
    assert lower_half([5, 4, 3, 2, 1, 0]) == [2, 1, 0]
    assert lower_half([4, 3, 2, 1, 0]) == [1, 0]  # odd n: the median is not in it
    assert lower_half([1, 0]) == [0]
    assert lower_half([0]) == []


def test_rejected_is_seeded_per_item_and_from_lower_half():
    cands = ["red circle left", "red circle on the left", "blue square right",
             "green triangle top", "red circle left side", "yellow star bottom"]
    picks = set()
    for seed in range(30):
        (res,) = _score([_item(cands, item_id="a")], seed=seed)
        assert res.rejected_index in lower_half(rank_candidates(res.scores))
        (again,) = _score([_item(cands, item_id="a")], seed=seed)
        assert again.rejected_index == res.rejected_index
        picks.add(res.rejected_index)
    assert len(picks) > 1  # the seed matters
    # the pick of an item depends on (seed, id) only, not on the other items or their order
    other = _item(["x y", "x y z", "q"], item_id="b")
    alone = _score([_item(cands, item_id="a")], seed=3)[0].rejected_index
    mixed = _score([other, _item(cands, item_id="a")], seed=3)[1].rejected_index
    assert alone == mixed
    assert item_rng(1, "a").integers(10**9) == item_rng(1, "a").integers(10**9)


def test_threshold_keeps_and_drops():
    items = [_item(["a b c", "a b c", "a b d"], item_id="hi"), _item(["a b", "c d", "e f"], item_id="lo")]
    hi, lo = _score(items)
    assert keep_decisions([hi.score, lo.score], threshold=0.5) == ([True, False], hi.score)
    assert lo.score == pytest.approx(1 / 3)  # include-self: orthogonal candidates score 1/n
    assert keep_decisions([hi.score, lo.score], threshold=hi.score)[0] == [True, False]  # >= threshold is kept
    assert keep_decisions([hi.score, lo.score], threshold=hi.score + 1e-6) == ([False, False], None)


def test_keep_fraction_keeps_the_highest_best_scores_ties_by_order():
    best = [0.9, 0.5, 0.99, None, 0.7, 0.99, 0.1]  # None: not scored (never kept, not counted)
    assert keep_decisions(best, keep_fraction=0.5) == ([True, False, True, False, False, True, False], 0.9)
    assert keep_decisions([0.8, 0.8, 0.8], keep_fraction=0.34) == ([True, False, False], 0.8)  # ties: order
    assert keep_decisions([0.2, 0.1], keep_fraction=0.01) == ([True, False], 0.2)  # at least one
    assert keep_decisions([None, None], keep_fraction=0.5) == ([False, False], None)
    assert keep_decisions([], keep_fraction=1.0) == ([], None)
    with pytest.raises(ValueError, match="exactly one"):
        keep_decisions([0.5], threshold=0.5, keep_fraction=0.5)


def test_degenerate_items():
    none, empty, single, one_valid, ascii_free = _score([
        _item([], item_id="n"), _item(["", "   "], item_id="e"), _item(["only one"], item_id="s"),
        _item(["", "fine text", "  "], item_id="o"), _item(["红色 圆形 左边", "红色 圆形 左边", "蓝色"], item_id="u"),
    ])
    assert none.outcome == "no_candidates" and none.score is None
    assert empty.outcome == "all_extractions_failed" and empty.scores == [None, None]
    assert single.outcome == "too_few_valid" and single.score == pytest.approx(1.0)  # never kept: not `scored`
    assert one_valid.outcome == "too_few_valid" and one_valid.chosen_index == 1
    assert ascii_free.outcome == "scored" and ascii_free.chosen_index == 0 and ascii_free.rejected_index == 2
    (single_ok,) = _score([_item(["only one"], item_id="s")], min_candidates=1)
    assert single_ok.outcome == "scored" and single_ok.rejected_index is None


def test_failed_extraction_is_never_chosen():
    good = formats.format_cod(["a", "b", "c", "d", "red circle left"])
    broken = "Step 1: only one step\n\nred circle left red circle left"
    it = _item([broken, good, good.replace("red circle left", "red circle on the left")], mode="cod")
    assert it.failures == ["no_description", None, None]
    (res,) = _score([it])
    assert res.scores[0] is None and res.chosen_index in (1, 2)


def test_one_encode_call_with_deduplicated_texts():
    enc = BagOfWords()
    items = [_item(["same", "same", "other"], item_id=str(i)) for i in range(5)]
    score_items(items, enc, batch_size=4, seed=0)
    assert len(enc.calls) == 1
    assert sorted(enc.calls[0]) == ["other", "same"]


def test_extraction_per_mode():
    cot = formats.format_cot("what", "see", "think", formats.answer_sentence("Blue"))
    assert extract(cot, "cot") == ("Blue", None)
    assert extract("Step 4: Conclude.\nno final sentence", "cot")[0] == "no final sentence"
    assert extract("nothing structured", "cot") == (None, "no_answer")
    assert extract("  whole text  ", "direct") == ("whole text", None)
    assert extract("\n", "cod") == (None, "empty")


def test_mean_cosine_blocks_cutting_items_give_the_same_scores(monkeypatch):
    import sicog.stages.curation.scoring as scoring

    rng = np.random.default_rng(1)
    emb = l2_normalise(rng.normal(size=(40, 8)))
    text_index = rng.integers(0, 40, 60)
    item_of = np.sort(rng.integers(0, 11, 60))
    whole = mean_cosine_scores(emb, text_index, item_of, 11)
    monkeypatch.setattr(scoring, "_BLOCK_ROWS", 7)
    np.testing.assert_allclose(mean_cosine_scores(emb, text_index, item_of, 11), whole, atol=1e-6)
    for g in np.unique(item_of):
        e = emb[text_index[item_of == g]]
        np.testing.assert_allclose(whole[item_of == g], (e @ e.T).mean(axis=1), atol=1e-6)
