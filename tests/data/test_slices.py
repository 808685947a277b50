"""Sliced images in the training data path: the authors' six-slice grid resize (seeded per record)."""

import copy
import json

from PIL import Image

from sicog.data import slices
from sicog.data.dataset import SupervisedDataset, read_source

SIX = slices.GRID_RESIZE_SLICES


def _plan(processor, size):
    ip = processor.image_processor
    return ip.plan(*ip.sliced_size(*size, training=True))


def test_grid_resize_target_follows_the_authors_rule(tiny_uhd):
    processor = tiny_uhd[1]  # 64 px slices
    target = slices.grid_resize_target(processor, (64, 48), 1.0, 0, "d.jsonl:1")
    assert _plan(processor, target).num_slices == SIX
    w, h = target  # six slices' area, aspect kept, both sides truncated
    assert 0 <= SIX * 64 * 64 - w * h < w + h and abs(w / h - 64 / 48) < 0.02
    assert slices.grid_resize_target(processor, target, 1.0, 0, "d.jsonl:1") is None  # already six slices
    assert slices.grid_resize_target(processor, (64, 48), 0.0, 0, "d.jsonl:1") is None
    overview_only = copy.deepcopy(processor)
    overview_only.image_processor.never_split = True  # stage 1 resizes too: the overview comes from it
    assert slices.grid_resize_target(overview_only, (64, 48), 1.0, 0, "d.jsonl:1") == target
    assert slices.grid_resize_target(overview_only, target, 1.0, 0, "d.jsonl:1") is None


def test_long_side_rule_for_textvqa_images(tiny_uhd):
    """An image whose name holds a pattern gets the long side first (small ones grow) and is never
    drawn for the six-slice resize; other images are unaffected; 0 switches the rule off."""
    processor = tiny_uhd[1]
    rules = slices.TrainingResize(grid_resize_prob=1.0, long_side_patterns=("TextVQA", "textvqa"), long_side=1024)
    assert slices.training_resize_target(processor, (500, 375), "TextVQA/train/0001.jpg", rules, 0, "k") == (1024, 768)
    assert slices.training_resize_target(processor, (300, 1000), "data/textvqa/x.png", rules, 0, "k") == (307, 1024)
    six = slices.training_resize_target(processor, (64, 48), "coco/0001.jpg", rules, 0, "k")
    assert six == slices.grid_resize_target(processor, (64, 48), 1.0, 0, "k")
    off = slices.TrainingResize(grid_resize_prob=0.0, long_side_patterns=("TextVQA",), long_side=0)
    assert slices.training_resize_target(processor, (500, 375), "TextVQA/a.jpg", off, 0, "k") is None
    assert slices.training_resize_target(processor, (500, 375), "TextVQA/a.jpg", None, 0, "k") is None


def test_grid_resize_draw_is_seeded_per_record_at_its_probability(tiny_uhd):
    processor = tiny_uhd[1]
    keys = [f"data.jsonl:{i}" for i in range(3000)]

    def drawn(seed):
        return {k for k in keys if slices.grid_resize_target(processor, (64, 48), 0.1, seed, k) is not None}

    first = drawn(0)
    assert 0.08 < len(first) / len(keys) < 0.12
    assert drawn(0) == first  # any worker, any resume: the same records
    assert drawn(1) != first


def test_dataset_resizes_drawn_images_unless_that_makes_them_too_long(tmp_path, tiny_uhd):
    processor = tiny_uhd[1]
    (tmp_path / "img").mkdir()
    recs = []
    for i in range(3):
        Image.new("RGB", (64, 48), (30 * i, 90, 200)).save(tmp_path / "img" / f"{i}.png")
        recs.append({"id": i, "image": f"img/{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "Blue."}]})
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))

    def grids(max_length, prob):
        ds = SupervisedDataset(read_source(str(data)), processor, str(tmp_path), max_length,
                               training_resize=slices.TrainingResize(grid_resize_prob=prob), seed=0)
        return [tuple(ds[i]["image_grids"][0].tolist()) for i in range(len(ds))], ds.skip_counts

    resized, skipped = grids(512, 1.0)
    assert all(c * r == SIX for c, r in resized) and not skipped
    assert grids(512, 0.0)[0] == [(0, 0)] * 3  # 64x48 at 64 px slices: the overview alone
    # six slices need 121 image tokens; at 80 tokens the records keep their own size, none is skipped
    kept, skipped = grids(80, 1.0)
    assert kept == [(0, 0)] * 3 and not skipped


def test_dataset_applies_the_long_side_rule_and_counts_its_tokens(tmp_path, tiny_uhd):
    """A TextVQA image is sliced at its long-side size, and the length estimate knows it."""
    processor = tiny_uhd[1]
    (tmp_path / "TextVQA").mkdir()
    Image.new("RGB", (64, 48), (10, 90, 200)).save(tmp_path / "TextVQA" / "0.png")
    rec = {"id": 0, "image": "TextVQA/0.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is written?"}, {"from": "gpt", "value": "STOP"}]}
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(rec) + "\n")
    rules = slices.TrainingResize(long_side_patterns=("TextVQA",), long_side=256)
    ds = SupervisedDataset(read_source(str(data)), processor, str(tmp_path), 4096, training_resize=rules, seed=0)
    grid = tuple(ds[0]["image_grids"][0].tolist())
    assert grid == _plan(processor, (256, 192)).grid  # 64x48 grown to 256x192 before slicing
    assert ds._layout(ds.records[0]) == slices.layout_for_size(processor, 256, 192)
    plain = SupervisedDataset(read_source(str(data)), processor, str(tmp_path), 4096, seed=0)
    assert tuple(plain[0]["image_grids"][0].tolist()) == (0, 0)
