"""Sources mixed by weight: `MixtureDataset` draws `num_samples` examples per epoch from its parts
(each a `SupervisedDataset`) by weight (sampling ratios) or share (`source_weights`); the draw
and the order are fixed by the seed alone, so a resumed run sees the same samples and quotas.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from sicog.config import DataSource, check_shares
from sicog.data.records import Located
from sicog.utils.io import SicogError

logger = logging.getLogger("sicog.data.dataset")  # the training data's one log (was one module)


def _quotas(sizes: list[int], weights: list[float], total: int) -> list[int]:
    """Split `total` samples over sources proportionally to `weights` (largest remainder)."""
    w = np.asarray(weights, dtype=float)
    exact = total * w / w.sum()
    q = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - q), kind="stable")[: total - int(q.sum())]:
        q[k] += 1
    return q.tolist()


class MixtureDataset(Dataset):
    """Sources mixed by weight: `num_samples` examples per epoch, deterministic given `seed`.

    A source whose quota is below its size is subsampled without replacement; one whose quota
    is above its size is repeated whole and topped up with a random subset.
    """

    def __init__(self, parts: list[Any], weights: list[float], num_samples: int | None = None,
                 seed: int = 0):
        if len(parts) != len(weights) or not parts:
            raise SicogError("MixtureDataset needs one weight per source and at least one source")
        for k, w in enumerate(weights):
            if not w > 0:
                raise SicogError(f"data.sources[{k}].weight: must be > 0, got {w}")
        self.parts = parts
        sizes = [len(p) for p in parts]
        total = num_samples if num_samples is not None else sum(sizes)
        if total <= 0:
            raise SicogError(f"data.num_samples: must be > 0, got {total}")
        rng = np.random.default_rng(seed)
        index: list[tuple[int, int]] = []
        self.quotas = _quotas(sizes, weights, total)
        for k, (size, q) in enumerate(zip(sizes, self.quotas)):
            local = np.concatenate([np.tile(np.arange(size), q // size), rng.permutation(size)[: q % size]])
            index += [(k, int(j)) for j in local]
        order = rng.permutation(len(index))
        self.index = [index[o] for o in order]
        for p, w, q in zip(parts, weights, self.quotas):
            logger.info("data source %s: %d records, weight %g -> %d samples per epoch (%.2fx)%s",
                        p.name, len(p), w, q, q / max(len(p), 1),
                        f", skipped {dict(p.skip_counts)}" if p.skip_counts else "")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        k, j = self.index[i]
        return self.parts[k][j]

    @property
    def lengths(self) -> list[int]:
        """Estimated token length of each example (for length-grouped batching)."""
        return [self.parts[k].lengths[j] for k, j in self.index]

    def has_image(self, i: int) -> bool:
        k, j = self.index[i]
        return self.parts[k].has_image(j)

    def record_for(self, i: int) -> Located:
        k, j = self.index[i]
        return self.parts[k].record_for(j)

    @property
    def skip_counts(self) -> Counter:
        """Skipped records of all sources by kind (missing_image, unreadable_image, too_long, malformed_record)."""
        return sum((p.skip_counts for p in self.parts), Counter())


def source_weights(sources: list[DataSource]) -> list[float]:
    """Mixture weights of the sources: a source with share s gets `total * s / (1.0 - S)`, where
    `total` sums the weights of the unshared sources (in source order) and S all shares (= s for a
    single one), so it gives a fraction s of the samples; the others keep their weights."""
    check_shares(sources)
    total = sum(src.weight for src in sources if src.share is None)
    shares = sum(src.share for src in sources if src.share is not None)
    return [src.weight if src.share is None else total * src.share / (1.0 - shares) for src in sources]
