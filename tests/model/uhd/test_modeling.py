"""The tiny LLaVA-UHD model: token layout, batching with different slice counts, processor."""

import pytest
import torch

from sicog.model.uhd import plan_slices
from sicog.model.uhd.image_processing_uhd import SicogUhdImageProcessor
from tests.model.conftest import make_image

PROMPT = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}]
TEXT_ONLY = [{"role": "user", "content": "How many circles?"}]


def _text(processor, messages):
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


@pytest.mark.parametrize("size,tokens", [((336, 336), 144), ((640, 480), 745), ((336, 2352), 1237)])
def test_paper_scale_token_counts(size, tokens):
    processor = SicogUhdImageProcessor()  # 336 px, patch 14, 12x12 queries
    assert processor.num_tokens(*size, training=True) == tokens
    assert SicogUhdImageProcessor(inference_longest_side=None).num_tokens(*size) == tokens


def test_answering_resizes_the_longer_side_first():
    processor = SicogUhdImageProcessor()
    assert processor.sliced_size(640, 480) == (1024, 768)
    assert processor.sliced_size(300, 2000) == (153, 1024)  # the other side truncated
    assert processor.sliced_size(640, 480, training=True) == (640, 480)


def test_processor_expands_each_image_into_its_layout(tiny_uhd):
    model, processor = tiny_uhd
    side, ip = model.config.query_side, processor.image_processor
    images = [make_image((200, 150)), make_image((64, 64), seed=1)]
    batch = processor(images=images, text=[_text(processor, PROMPT)] * 2, return_tensors="pt", padding=True)
    plans = [plan_slices(*ip.sliced_size(*im.size), model.config.max_slices, model.config.scale_resolution,
                         model.config.vision_config.patch_size) for im in images]
    assert batch["image_grids"].tolist() == [list(p.grid or (0, 0)) for p in plans]
    ids = batch["input_ids"]
    for k, plan in enumerate(plans):
        cols, rows = plan.grid or (0, 0)
        assert int((ids[k] == model.config.image_token_id).sum()) == (cols * rows + 1) * side * side
        assert int((ids[k] == model.config.row_token_id).sum()) == rows * side + (cols == 1)
        assert int((ids[k] == model.config.slice_token_id).sum()) == int(cols > 1)
    assert batch["pixel_values"].shape[0] == sum(p.num_slices + 1 for p in plans)
    n = plans[0].num_slices
    assert batch["slice_sizes"][:n].tolist() == [[h, w] for w, h in plans[0].slice_sizes]
    assert batch["slice_sizes"][n].tolist() == list(plans[0].source_size[::-1])
    training = ip(images[1:], training=True)  # training data is sliced at its own size: 64 px, no slices
    assert training["image_grids"].tolist() == [[0, 0]] and training["pixel_values"].shape[0] == 1


def test_slices_are_stitched_row_major_into_one_map(tiny_uhd):
    model, processor = tiny_uhd
    inputs = processor.image_processor([make_image((200, 150))], return_tensors="pt")
    cols, rows = inputs["image_grids"][0].tolist()
    side = model.config.query_side
    core = model.model
    patch = model.config.vision_config.patch_size
    with torch.no_grad():
        feats = core.encode_slices(inputs["pixel_values"], inputs["slice_sizes"])
        per_slice = core.multi_modal_projector(feats, [(h // patch, w // patch) for h, w in inputs["slice_sizes"].tolist()])
        stitched = core.get_image_features(inputs["pixel_values"], inputs["slice_sizes"], inputs["image_grids"])
    grid = stitched[: rows * side * cols * side].reshape(rows * side, cols * side, -1)
    r, c = side + 1, 2 * side + 2  # feature row/col -> slice (1, 2), query (1, 2)
    assert torch.allclose(grid[r, c], per_slice[1 * cols + 2, 1 * side + 2], atol=1e-6)
    assert torch.allclose(stitched[-side * side:], per_slice[-1], atol=1e-6)  # the overview last


def test_a_batch_with_different_slice_counts_gives_each_sample_its_own_logits(tiny_uhd):
    model, processor = tiny_uhd
    cases = [(make_image((200, 150)), PROMPT), (None, TEXT_ONLY), (make_image((64, 64), seed=1), PROMPT),
             (make_image((90, 400), seed=2), PROMPT)]

    def run(items):
        images = [im for im, _ in items if im is not None]
        texts = [_text(processor, m) for _, m in items]
        batch = processor(images=images or None, text=texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = model(**batch).logits
        return [logits[k, : int(batch["attention_mask"][k].sum())] for k in range(len(items))]

    together = run(cases)
    for k, case in enumerate(cases):
        alone = run([case])[0]
        assert alone.shape == together[k].shape
        assert (alone - together[k]).abs().max() <= 1e-4


def test_image_token_mismatch_is_an_error(tiny_uhd):
    model, processor = tiny_uhd
    batch = processor(images=[make_image((64, 64))], text=[_text(processor, PROMPT)], return_tensors="pt")
    ids = batch["input_ids"].clone()
    ids[0, ids[0].tolist().index(model.config.image_token_id)] = model.config.row_token_id
    with pytest.raises(ValueError, match="image tokens"):
        model(input_ids=ids, pixel_values=batch["pixel_values"], slice_sizes=batch["slice_sizes"],
              image_grids=batch["image_grids"])


def test_processor_refuses_more_placeholders_than_images(tiny_uhd):
    _, processor = tiny_uhd
    with pytest.raises(ValueError, match="more <image>"):
        processor(images=[make_image()], text=["<image> and <image>"])
