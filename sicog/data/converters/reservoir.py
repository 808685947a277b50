"""`--sample N --seed S`: a uniform random subset of N usable records, in one streaming pass.

Reservoir sampling (Vitter's algorithm R): the first N usable records fill the reservoir; the
i-th (i > N, 1-based) replaces a random slot with probability N / i. Every usable record ends up
in the sample with the same probability, only N records are held, and the same input, seed and
N give the same sample. The sample is written in input order.
"""

from __future__ import annotations

import random
from typing import Any


class Reservoir:
    """At most `size` items out of all those offered, uniformly at random (seeded)."""

    def __init__(self, size: int, seed: int):
        if size < 1:
            raise ValueError(f"reservoir size must be >= 1, got {size}")
        self.size, self.offered = size, 0
        self._rng = random.Random(seed)
        self._items: list[tuple[int, Any]] = []

    def offer(self, item: Any) -> None:
        """Consider one more item (kept, or not, at random)."""
        self.offered += 1
        if len(self._items) < self.size:
            self._items.append((self.offered, item))
            return
        slot = self._rng.randrange(self.offered)
        if slot < self.size:
            self._items[slot] = (self.offered, item)

    def items(self) -> list[Any]:
        """The sample, in the order the items were offered."""
        return [item for _, item in sorted(self._items, key=lambda pair: pair[0])]

    @property
    def dropped(self) -> int:
        return self.offered - len(self._items)
