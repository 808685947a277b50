"""Self-consistency scores: one encode call per chunk of items, then vectorised per-item means.

For an item whose candidates i = 1..n have usable extractions (L2-normalised embeddings e_i):

    s_i = (1/n) * sum_j cos(e_i, e_j),   j = 1..n INCLUDING j = i

(the paper's scale: the authors' code averages a row of the full similarity matrix, so every
score carries +1/n from the self term; the ranking is the same as without it). Because the
e_j are unit vectors, s_i = e_i . (sum_j e_j) / n, so an item costs O(n d), not O(n^2 d), and
the whole chunk is done with array operations.

Decisions (documented in `sicog curate --help` too):
- scores are rounded to 6 decimals before ranking, so float noise never decides a tie;
- chosen = argmax, ties -> the lowest candidate index;
- ranking = usable candidates by score descending, ties by index ascending; the "lower half" is
  the last floor(n/2) of the ranking (n = 6: ranks 4-6; n = 5: ranks 4-5, the median is not in
  it; n = 2: the other one); rejected = a uniform pick from it by a generator seeded with
  sha256(f"{seed}:{id}"), so it depends on neither input order nor sharding;
- identical extracted texts are embedded once (dedupe before encoding);
- which items are kept (`keep_decisions`) is decided once every item is scored, over all of them:
  with a threshold, the scored items whose best score >= it; with a keep fraction f, the
  max(1, round(f * n)) of the n scored items with the highest best score, ties by input order
  (so the cut does not depend on sharding, and a fraction counts every rank's items).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from sicog.stages.curation.items import CandidateItem

SCORE_DECIMALS = 6
_BLOCK_ROWS = 32768  # rows gathered at a time: bounds memory for wide encoders (4096-d)


class TextEncoder(Protocol):
    """What scoring needs from an encoder: unit-norm (or any) embeddings, one row per text."""

    def encode(self, texts: Sequence[str], batch_size: int, progress: bool = False) -> np.ndarray: ...


@dataclass
class ItemScore:
    """Curation outcome of one item."""

    scores: list[float | None]  # per candidate; None where the extraction failed
    outcome: str  # scored | no_candidates | all_extractions_failed | too_few_valid
    chosen_index: int | None = None
    score: float | None = None  # the chosen candidate's score (= max)
    rejected_index: int | None = None
    identical: bool = False  # >= 2 usable candidates, all with the same extracted text


@dataclass
class ChunkTiming:
    """Where the time of one chunk went."""

    encode_seconds: float = 0.0
    score_seconds: float = 0.0
    texts_encoded: int = 0
    candidates: int = 0
    extra: dict = field(default_factory=dict)


def item_rng(seed: int, item_id: str) -> np.random.Generator:
    """The generator of an item's rejected pick: a function of (seed, id) only."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero instead of becoming NaN)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def rank_candidates(scores: Sequence[float | None]) -> list[int]:
    """Usable candidate indices by score descending, ties by index ascending."""
    usable = [i for i, s in enumerate(scores) if s is not None]
    return sorted(usable, key=lambda i: (-scores[i], i))


def lower_half(ranking: Sequence[int]) -> list[int]:
    """The last floor(n/2) entries of a ranking (empty for n < 2)."""
    n = len(ranking)
    return list(ranking[n - n // 2:]) if n >= 2 else []


def mean_cosine_scores(emb: np.ndarray, text_index: np.ndarray, item_of: np.ndarray,
                       n_items: int) -> np.ndarray:
    """s_k = e_k . (sum of e_j over k's item) / n_item for every usable candidate k (include-self).

    emb: [U, d] unit rows (unique texts); text_index[k]: row of candidate k; item_of[k]: its item
    (0..n_items-1, non-decreasing: candidates grouped by item). Returns float64 scores aligned
    with text_index. Rows are gathered in blocks so that wide encoders (4096-d) stay in memory.
    """
    m = len(text_index)
    if m and np.any(np.diff(item_of) < 0):
        raise ValueError("item_of must be non-decreasing (candidates grouped by item)")
    emb = np.asarray(emb, dtype=np.float32)
    counts = np.bincount(item_of, minlength=n_items).astype(np.float64)
    sums = np.zeros((n_items, emb.shape[1]), dtype=np.float32)
    for start in range(0, m, _BLOCK_ROWS):
        sl = slice(start, start + _BLOCK_ROWS)
        groups = item_of[sl]
        # one segment sum per item present in the block (an item cut by a block edge adds twice)
        starts = np.concatenate(([0], np.flatnonzero(np.diff(groups)) + 1))
        sums[groups[starts]] += np.add.reduceat(emb[text_index[sl]], starts, axis=0)
    out = np.empty(m, dtype=np.float64)
    for start in range(0, m, _BLOCK_ROWS):
        sl = slice(start, start + _BLOCK_ROWS)
        dots = (emb[text_index[sl]] * sums[item_of[sl]]).sum(axis=1, dtype=np.float64)
        out[sl] = dots / counts[item_of[sl]]
    return out


def score_items(items: Sequence[CandidateItem], encoder: TextEncoder, *, batch_size: int,
                seed: int, min_candidates: int = 2,
                progress: bool = False) -> tuple[list[ItemScore], ChunkTiming]:
    """Score every item (extractions must be filled); one encoder call for all unique texts."""
    timing = ChunkTiming(candidates=sum(len(it.candidates) for it in items))
    unique: dict[str, int] = {}
    text_index: list[int] = []
    item_of: list[int] = []
    for g, it in enumerate(items):
        for text in it.extracted:
            if text is not None:
                text_index.append(unique.setdefault(text, len(unique)))
                item_of.append(g)
    texts = list(unique)
    timing.texts_encoded = len(texts)
    flat_scores = np.zeros(0)
    if texts:
        t0 = time.perf_counter()
        emb = l2_normalise(encoder.encode(texts, batch_size=batch_size, progress=progress))
        timing.encode_seconds = time.perf_counter() - t0
        if emb.shape[0] != len(texts):
            raise RuntimeError(f"encoder returned {emb.shape[0]} embeddings for {len(texts)} texts")
    t0 = time.perf_counter()
    if texts:
        flat = mean_cosine_scores(emb, np.asarray(text_index, dtype=np.int64),
                                  np.asarray(item_of, dtype=np.int64), len(items))
        flat_scores = np.round(flat, SCORE_DECIMALS)
    results: list[ItemScore] = []
    pos = 0
    for it in items:
        scores: list[float | None] = []
        for text in it.extracted:
            if text is None:
                scores.append(None)
            else:
                scores.append(float(flat_scores[pos]))
                pos += 1
        results.append(_decide(it, scores, seed, min_candidates))
    timing.score_seconds = time.perf_counter() - t0
    return results, timing


def _decide(it: CandidateItem, scores: list[float | None], seed: int, min_candidates: int) -> ItemScore:
    ranking = rank_candidates(scores)
    n_valid = len(ranking)
    if not it.candidates:
        return ItemScore(scores=scores, outcome="no_candidates")
    if n_valid == 0:
        return ItemScore(scores=scores, outcome="all_extractions_failed")
    chosen = ranking[0]  # argmax, lowest index on ties (ranking order)
    valid_texts = {it.extracted[i] for i in ranking}
    res = ItemScore(scores=scores, outcome="scored", chosen_index=chosen, score=scores[chosen],
                    identical=n_valid >= 2 and len(valid_texts) == 1)
    if n_valid < min_candidates:
        res.outcome = "too_few_valid"
        return res
    pool = lower_half(ranking)
    if pool:
        res.rejected_index = pool[int(item_rng(seed, it.id).integers(len(pool)))]
    return res


def keep_decisions(best: Sequence[float | None], *, threshold: float | None = None,
                   keep_fraction: float | None = None) -> tuple[list[bool], float | None]:
    """Which items are kept, and the score cut: the lowest best score kept (None: none kept).

    `best`: per item in input order, its best score if it may be kept (outcome `scored`), else None.
    Exactly one of `threshold` and `keep_fraction` is given (see the module docstring).
    """
    if (threshold is None) == (keep_fraction is None):
        raise ValueError("keep_decisions: give exactly one of threshold and keep_fraction")
    eligible = [i for i, s in enumerate(best) if s is not None]
    if threshold is not None:
        chosen = {i for i in eligible if best[i] >= threshold}
    elif eligible:
        order = sorted(eligible, key=lambda i: (-best[i], i))
        chosen = set(order[:max(1, round(keep_fraction * len(eligible)))])
    else:
        chosen = set()
    cut = min((best[i] for i in chosen), default=None)
    return [i in chosen for i in range(len(best))], cut
