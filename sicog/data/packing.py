"""Padding-free training batches: samples concatenated into one row up to a token budget.

A packed batch is one row (`input_ids`, `labels`, `position_ids` of shape (1, T), no
`attention_mask`) holding whole samples back to back, and the `pixel_values` of their images in
order (LLaVA fills image tokens in order, so the images follow the samples; sliced `uhd` images
bring their slices, sizes and grids in the same order, `slices.collate_slices`). What keeps it
exactly equal to the padded batch of the same samples:

- positions restart at 0 with every sample, so RoPE sees each sample as it would alone;
- transformers derives the sample boundaries from those positions when there is no
  attention mask: a block-diagonal causal mask for SDPA / eager / flex attention, varlen
  (`cu_seqlens`) flash-attention for `flash_attention_2`; attention never crosses a boundary;
- the label of each sample's first token is -100: the model shifts labels by one, so the last
  token of a sample would otherwise be trained to predict the next sample's first token (in a
  padded row that target is padding, -100);
- `use_cache` is False: with a cache, transformers skips the boundary detection.

`plan_packs` groups sample indices by best-fit decreasing on their token lengths (image
tokens included); `PackedDataset` serves one pack per item; `PackingCollator` builds the row.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from typing import Any

import torch
from torch.utils.data import Dataset

from sicog.data import slices
from sicog.data.chat import IGNORE_INDEX, tokenizer_of
from sicog.utils.io import SicogError

logger = logging.getLogger("sicog.data.dataset")  # the training data's one log


def plan_packs(lengths: list[int], budget: int) -> list[list[int]]:
    """Sample indices grouped into packs of at most `budget` tokens (best-fit decreasing).

    Longest first, each sample goes into the open pack it fills most tightly, or opens a new
    one. A sample longer than the budget gets a pack of its own. Deterministic: ties go to the
    lower index and the earlier pack. Packs come out in the order they were opened.
    """
    if budget < 1:
        raise SicogError(f"data.packing_tokens: must be >= 1, got {budget}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    packs: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, pack number), sorted: bisect finds the tightest fit
    for i in order:
        n = max(int(lengths[i]), 1)
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            room, p = free.pop(k)
            packs[p].append(i)
            if room - n > 0:
                bisect.insort(free, (room - n, p))
            continue
        packs.append([i])
        if budget - n > 0:
            bisect.insort(free, (budget - n, len(packs) - 1))
    return packs


class PackedDataset(Dataset):
    """One item per pack: the list of the pack's examples (what `PackingCollator` flattens).

    The packs are planned once from the base dataset's estimated lengths, so the epoch is the
    same set of samples as unpacked; the Trainer's sampler shuffles the packs each epoch."""

    def __init__(self, base: Any, budget: int):
        lengths = list(base.lengths)
        self.base, self.budget = base, budget
        self.packs = plan_packs(lengths, budget)
        self._lengths = [sum(lengths[i] for i in p) for p in self.packs]

    def __len__(self) -> int:
        return len(self.packs)

    def __getitem__(self, k: int) -> list[dict]:
        return [self.base[i] for i in self.packs[k]]

    @property
    def lengths(self) -> list[int]:
        """Estimated tokens of each pack."""
        return self._lengths

    @property
    def skip_counts(self) -> Counter:
        return self.base.skip_counts

    def fill(self) -> float:
        """Mean share of the budget the packs fill (estimated lengths)."""
        return sum(self._lengths) / (self.budget * max(len(self.packs), 1))


def pack_dataset(dataset: Any, data_cfg: Any, per_device_batch_size: int) -> PackedDataset:
    """The training dataset in packs of `data.packing_tokens` (default: per-device batch size x
    max_length, the largest padded batch, so packing never needs more memory than padding)."""
    budget = data_cfg.packing_tokens or per_device_batch_size * data_cfg.max_length
    packed = PackedDataset(dataset, budget)
    logger.info("packing: %d samples in %d packs of at most %d tokens (%.0f%% full on average)",
                len(dataset), len(packed), budget, 100 * packed.fill())
    return packed


class PackingCollator:
    """Flattens examples (or packs of examples, as `PackedDataset` serves them) into one
    padding-free row; see the module docstring for why the result is exact."""

    def __init__(self, processor: Any):
        tokenizer_of(processor)  # fails early on a processor without a tokenizer, as DataCollator does
        self.processor = processor

    def __call__(self, items: list) -> dict:
        examples = [e for it in items for e in (it if isinstance(it, list) else [it])]
        if not examples:
            raise SicogError("packing: an empty batch")
        ids, labels, positions = [], [], []
        for e in examples:
            n = len(e["input_ids"])
            ids.append(torch.as_tensor(e["input_ids"], dtype=torch.long))
            lab = torch.as_tensor(e["labels"], dtype=torch.long).clone()
            lab[0] = IGNORE_INDEX  # the target of the previous sample's last token
            labels.append(lab)
            positions.append(torch.arange(n, dtype=torch.long))
        batch = {"input_ids": torch.cat(ids)[None], "labels": torch.cat(labels)[None],
                 "position_ids": torch.cat(positions)[None], "use_cache": False}
        if any("slice_sizes" in e for e in examples):  # sliced images (uhd): one padded tensor of slices
            return {**batch, **slices.collate_slices(examples)}
        pixels = [e["pixel_values"] for e in examples if e.get("pixel_values") is not None]
        if pixels:
            batch["pixel_values"] = torch.stack(pixels)
        return batch


def is_packed(batch: dict) -> bool:
    """A padding-free batch: position ids and no attention mask."""
    return "position_ids" in batch and batch.get("attention_mask") is None


def sequence_lengths(batch: dict) -> list[int]:
    """Tokens of each sample in a padded (attention-mask row sums) or packed (position runs) batch."""
    if is_packed(batch):
        out: list[int] = []
        for row in batch["position_ids"].tolist():
            for p in row:
                if p == 0 or not out:
                    out.append(0)
                out[-1] += 1
        return out
    if batch.get("attention_mask") is not None:
        return [int(n) for n in batch["attention_mask"].sum(dim=1).tolist()]
    return [int(batch["input_ids"].shape[1])] * int(batch["input_ids"].shape[0])


def packed_problem(batch: dict) -> str | None:
    """What is wrong with a packed batch's layout (None when it is well formed): one row, positions
    0, 1, 2, ... restarting per sample, an unlabelled first token per sample, no cache."""
    ids, pos, labels = batch["input_ids"], batch["position_ids"], batch["labels"]
    if ids.shape[0] != 1 or pos.shape != ids.shape or labels.shape != ids.shape:
        return f"input_ids {tuple(ids.shape)}, position_ids {tuple(pos.shape)}, labels {tuple(labels.shape)}: " \
               "expected one row of equal shapes"
    row = pos[0]
    if int(row[0]) != 0:
        return f"the first position id is {int(row[0])}, not 0"
    step = row[1:] - row[:-1]
    if bool(((step != 1) & (row[1:] != 0)).any()):
        return "position ids neither increase by one nor restart at 0 at a sample boundary"
    starts = (row == 0).nonzero().flatten()
    if bool((labels[0, starts] != IGNORE_INDEX).any()):
        return "a sample's first token carries a label: the previous sample would be trained to predict it"
    if batch.get("use_cache", True):
        return "use_cache is not False: with a cache transformers ignores the sample boundaries"
    return None


def unpack_batch(batch: dict, pad_id: int) -> dict:
    """The padded batch (right padding, attention mask) holding the samples of a packed one."""
    lens = sequence_lengths(batch)
    longest = max(lens)
    ids = torch.full((len(lens), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(lens), longest), IGNORE_INDEX, dtype=torch.long)
    attn = torch.zeros((len(lens), longest), dtype=torch.long)
    start = 0
    for i, n in enumerate(lens):
        ids[i, :n] = batch["input_ids"][0, start:start + n]
        labels[i, :n] = batch["labels"][0, start:start + n]
        attn[i, :n] = 1
        start += n
    out = {"input_ids": ids, "labels": labels, "attention_mask": attn}
    for key in ("pixel_values", "slice_sizes", "image_grids"):  # images keep their order
        if batch.get(key) is not None:
            out[key] = batch[key]
    return out
