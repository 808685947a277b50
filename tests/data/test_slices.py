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
    overview_only.image_processor.never_split = True  # stage 1: the resize would change nothing
    assert slices.grid_resize_target(overview_only, (64, 48), 1.0, 0, "d.jsonl:1") is None


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
                               grid_resize_prob=prob, seed=0)
        return [tuple(ds[i]["image_grids"][0].tolist()) for i in range(len(ds))], ds.skip_counts

    resized, skipped = grids(512, 1.0)
    assert all(c * r == SIX for c, r in resized) and not skipped
    assert grids(512, 0.0)[0] == [(0, 0)] * 3  # 64x48 at 64 px slices: the overview alone
    # six slices need 121 image tokens; at 80 tokens the records keep their own size, none is skipped
    kept, skipped = grids(80, 1.0)
    assert kept == [(0, 0)] * 3 and not skipped
