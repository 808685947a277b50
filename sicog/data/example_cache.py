"""A bounded in-memory cache of built training examples (`SupervisedDataset`).

Building an example (tokenising its record, decoding and normalising its image) takes a quarter to a
third of a training step of the CPU demo's tiny models, whose epochs repeat every record several
times. On the path that uses the cache an example is a pure function of its record (no random
augmentation), so a cached example is the very one a fresh build would give: training is unchanged,
only faster. The budget bounds memory where an epoch never repeats a record (real scale): there the
cache fills up to it and then only costs that memory.
"""

from __future__ import annotations

import torch

#: bytes of examples one dataset keeps, per process (a 96 px demo image is ~110 KB as pixel values)
BUDGET_BYTES = 512 * 2**20
_LIST_ITEM_BYTES = 36  # a Python int in a list: the 8-byte pointer and the int object


def example_bytes(example: dict) -> int:
    """Approximate memory held by an example: its tensors' bytes and its token lists."""
    total = 0
    for value in example.values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, list):
            total += _LIST_ITEM_BYTES * len(value)
    return total


class ExampleCache:
    """index -> example, filled until `budget_bytes` is reached (nothing is evicted: an epoch in a
    seeded order would evict each example just before its next use)."""

    def __init__(self, budget_bytes: int = BUDGET_BYTES):
        self.budget_bytes = budget_bytes
        self.bytes = 0
        self._examples: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self._examples)

    def get(self, i: int) -> dict | None:
        return self._examples.get(i)

    def put(self, i: int, example: dict) -> None:
        size = example_bytes(example)
        if i not in self._examples and self.bytes + size <= self.budget_bytes:
            self._examples[i] = example
            self.bytes += size
