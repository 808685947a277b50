"""Padding-free packing: the plan, the packed row, and exactness against padded batches (same
loss and gradients, any attention implementation), plus the pre-flight check of a packed batch."""

from __future__ import annotations

import random

import pytest
import torch

from sicog.config import DataConfig, DataSource
from sicog.data.chat import IGNORE_INDEX
from sicog.data.dataset import DataCollator, build_train_dataset, run_preflight
from sicog.data.packing import (
    PackedDataset,
    PackingCollator,
    pack_dataset,
    packed_problem,
    plan_packs,
    sequence_lengths,
    unpack_batch,
)
from sicog.data.preflight import preflight_check
from sicog.utils.io import SicogError

from ._samples import image_record, text_record, write_image, write_jsonl


@pytest.fixture
def skewed(tmp_path, processor):
    """6 image records with short answers and 4 text records of very different lengths."""
    imgs = tmp_path / "imgs"
    for i in range(6):
        write_image(imgs / f"{i}.png", seed=i)
    long = " ".join(f"step {k}: the circle moves." for k in range(12))
    texts = [text_record(i, answer=long if i % 2 else "Four.") for i in range(4)]
    cfg = DataConfig(sources=[
        DataSource(path=write_jsonl(tmp_path / "img.jsonl", [image_record(i) for i in range(6)]),
                   image_folder=str(imgs)),
        DataSource(path=write_jsonl(tmp_path / "txt.jsonl", texts))], max_length=256)
    return build_train_dataset(cfg, processor, seed=0)


def test_plan_packs_every_sample_once_within_the_budget():
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(300)]
    packs = plan_packs(lengths, 128)
    assert sorted(i for p in packs for i in p) == list(range(300))
    assert all(sum(lengths[i] for i in p) <= 128 for p in packs)
    # best-fit decreasing is within 11/9 OPT + 1 packs; the total size bounds OPT from below
    assert len(packs) <= 11 / 9 * (sum(lengths) / 128 + 1) + 1
    assert plan_packs(lengths, 128) == packs  # deterministic
    assert plan_packs([10, 200, 5], 100) == [[1], [0, 2]]  # too long: a pack of its own
    assert plan_packs([60, 50, 40, 30], 100) == [[0, 2], [1, 3]]  # tightest fit first
    with pytest.raises(SicogError, match="packing_tokens"):
        plan_packs([1], 0)


def test_packed_row_layout(skewed, processor):
    examples = [skewed[i] for i in range(5)]
    batch = PackingCollator(processor)(examples)
    n = [len(e["input_ids"]) for e in examples]
    assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape == (1, sum(n))
    assert "attention_mask" not in batch and batch["use_cache"] is False
    assert sequence_lengths(batch) == n
    assert batch["position_ids"][0].tolist() == [p for k in n for p in range(k)]
    assert packed_problem(batch) is None
    n_img = sum(e["pixel_values"] is not None for e in examples)
    assert batch["pixel_values"].shape[0] == n_img
    padded = DataCollator(processor)(examples)
    back = unpack_batch(batch, DataCollator(processor).pad_id)
    for key in ("input_ids", "labels", "attention_mask"):
        assert torch.equal(back[key], padded[key]), key  # a sample's first label is -100 in both
    assert sequence_lengths(padded) == n


def _loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_packed_and_padded_batches_give_the_same_loss_and_gradients(skewed, tiny_ckpt):
    from sicog.model.checkpoint import load_checkpoint

    model, processor = load_checkpoint(tiny_ckpt)  # sdpa (flash-attention reads the same positions)
    model.train()
    examples = [skewed[i] for i in range(len(skewed))]  # images and text, 20 to 150 tokens
    lengths = [len(e["input_ids"]) for e in examples]
    assert max(lengths) > 3 * min(lengths)
    padded_loss, padded = _loss_and_grads(model, DataCollator(processor)(examples))
    packed_loss, packed = _loss_and_grads(model, PackingCollator(processor)(examples))
    assert abs(packed_loss - padded_loss) / padded_loss <= 1e-5
    assert padded.keys() == packed.keys() and len(packed) > 10
    assert _grad_gap(packed, padded) <= 1e-5
    # why each rule exists: a label on a sample's first token, or a cache (no sample boundaries),
    # changes the gradients by far more than that
    bad = PackingCollator(processor)(examples)
    bad["labels"][0, lengths[0]] = bad["input_ids"][0, lengths[0]]
    assert _grad_gap(_loss_and_grads(model, bad)[1], padded) > 1e-3
    cached = {**PackingCollator(processor)(examples), "use_cache": True}
    assert _grad_gap(_loss_and_grads(model, cached)[1], padded) > 1e-3


def _grad_gap(grads, reference):
    """Largest |difference| of any gradient entry, relative to the largest reference entry."""
    scale = max(g.abs().max() for g in reference.values())
    return float(max((grads[k] - reference[k]).abs().max() for k in reference) / scale)

def test_preflight_checks_a_packed_batch(skewed, tiny):
    model, processor = tiny
    summary = run_preflight(skewed, PackingCollator(processor), processor, model, batch_size=6)
    assert summary["examples"] == 6 and summary["images"] >= 1
    examples = [skewed[i] for i in range(4)]
    records = [skewed.record_for(i) for i in range(4)]
    n0 = len(examples[0]["input_ids"])
    faults = {
        "first token carries a label": lambda b: b["labels"][0].__setitem__(n0, b["input_ids"][0, n0]),
        "restart at 0": lambda b: b["position_ids"][0].__setitem__(n0, 5),
        "use_cache": lambda b: b.update(use_cache=True),
    }
    for needle, fault in faults.items():
        batch = PackingCollator(processor)(examples)
        fault(batch)
        with pytest.raises(SicogError, match=needle):
            preflight_check(batch, processor, model, records)
    # the per-sample checks still run on the samples of a packed row
    batch = PackingCollator(processor)(examples)
    batch["labels"][0, :n0] = IGNORE_INDEX
    with pytest.raises(SicogError, match="reply inside the masked prompt"):
        preflight_check(batch, processor, model, records)


def test_packed_dataset_serves_every_sample_once(skewed):
    packed = pack_dataset(skewed, DataConfig(max_length=256, packing_tokens=300), per_device_batch_size=4)
    assert packed.budget == 300 and isinstance(packed, PackedDataset)
    assert sorted(i for p in packed.packs for i in p) == list(range(len(skewed)))
    assert all(n <= 300 for n in packed.lengths) and 0 < packed.fill() <= 1
    assert [len(e["input_ids"]) for e in packed[0]] == [len(skewed[i]["input_ids"]) for i in packed.packs[0]]
    default = pack_dataset(skewed, DataConfig(max_length=256), per_device_batch_size=2)
    assert default.budget == 512


def test_uhd_packed_and_padded_batches_give_the_same_loss_and_gradients(tmp_path, tiny_uhd_ckpt):
    """Sliced images (uhd) pack too: the slices of every sample's image, in order, beside one row;
    the pre-flight check passes and the loss and gradients equal the padded batch's."""
    from sicog.data.preflight import preflight_check
    from sicog.model.checkpoint import load_checkpoint

    model, processor = load_checkpoint(tiny_uhd_ckpt)
    model.train()
    imgs = tmp_path / "imgs"
    sizes = [(200, 150), (48, 40), (60, 400)]  # a 2x2-ish grid, the overview alone, a column of slices
    for i, size in enumerate(sizes):
        write_image(imgs / f"{i}.png", size=size, seed=i)
    long = " ".join(f"step {k}: the circle moves." for k in range(8))
    cfg = DataConfig(sources=[
        DataSource(path=write_jsonl(tmp_path / "img.jsonl", [image_record(i, answer=long if i else None)
                                                             for i in range(3)]), image_folder=str(imgs)),
        DataSource(path=write_jsonl(tmp_path / "txt.jsonl", [text_record(0)]))], max_length=2048)
    dataset = build_train_dataset(cfg, processor, seed=0)
    examples = [dataset[i] for i in range(len(dataset))]
    n_images = sum("slice_sizes" in e for e in examples)
    assert n_images >= 2 and len({tuple(e["slice_sizes"].shape) for e in examples if "slice_sizes" in e}) >= 2
    packed = PackingCollator(processor)(examples)
    assert packed_problem(packed) is None and packed["image_grids"].shape == (n_images, 2)
    preflight_check(packed, processor, model)
    padded_loss, padded = _loss_and_grads(model, DataCollator(processor)(examples))
    packed_loss, grads = _loss_and_grads(model, packed)
    assert abs(packed_loss - padded_loss) / padded_loss <= 1e-5
    assert padded.keys() == grads.keys() and _grad_gap(grads, padded) <= 1e-5
