"""The training examples' in-memory cache: exact (a cached example is a fresh build's) and bounded."""

from __future__ import annotations

import torch

from sicog.data.dataset import SupervisedDataset
from sicog.data.example_cache import ExampleCache, example_bytes
from sicog.data.records import read_records

from ._samples import image_record, write_image, write_jsonl


def _dataset(tmp_path, processor, n=4):
    imgs = tmp_path / "imgs"
    for i in range(n):
        write_image(imgs / f"{i}.png", seed=i)
    path = write_jsonl(tmp_path / "img.jsonl", [image_record(i) for i in range(n)])
    return SupervisedDataset(read_records(path), processor, str(imgs), 512, "raise"), imgs


def test_a_second_read_is_the_first_example_and_reads_no_file(tmp_path, processor):
    ds, imgs = _dataset(tmp_path, processor)
    fresh = SupervisedDataset(ds.records, processor, str(imgs), 512, "raise")[1]
    first = ds[1]
    assert torch.equal(first["pixel_values"], fresh["pixel_values"]) and first["input_ids"] == fresh["input_ids"]
    write_image(imgs / "1.png", seed=99)  # a later read of the file would see other pixels
    again = ds[1]
    assert again is first
    reread = SupervisedDataset(ds.records, processor, str(imgs), 512, "raise")[1]
    assert not torch.equal(reread["pixel_values"], first["pixel_values"])


def test_the_cache_stops_filling_at_its_budget(tmp_path, processor):
    ds, _ = _dataset(tmp_path, processor)
    one = example_bytes(ds[0])
    assert one > ds[0]["pixel_values"].numel() * 4  # pixels and the token lists
    cache = ExampleCache(budget_bytes=2 * one + one // 2)
    for i in range(4):
        cache.put(i, ds[i])
    assert len(cache) == 2 and cache.bytes == 2 * one and cache.get(2) is None
    cache.put(0, ds[0])  # already held: not counted twice
    assert cache.bytes == 2 * one
