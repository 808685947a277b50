"""Batched generation: batching plan, left padding correctness, n per prompt, seeds, modes."""

from __future__ import annotations

import pytest
import torch

from sicog.model.generation import (
    SamplingParams,
    batch_seed,
    generate_batch,
    generate_texts,
    plan_batches,
    render_prompt,
)
from tests.model.conftest import make_image


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is fastest on a shared 2-core machine
    yield
    torch.set_num_threads(before)


PROMPTS = ["Describe.", "What colour is the large circle at the top left of the picture?",
           "How many?", "Please generate a detailed caption of this image. Describe the image step-by-step."]


def test_plan_batches_groups_by_length_and_modality():
    lengths = [5, 50, 7, 49, 6, 48, 30]
    has_image = [True, True, False, True, False, True, True]
    plan = plan_batches(lengths, has_image, batch_size=2)
    assert sorted(i for b in plan for i in b) == list(range(7))
    assert all(len(b) <= 2 for b in plan)
    assert all(len({has_image[i] for i in b}) == 1 for b in plan)
    assert plan[0] == [1, 3]  # longest image prompts first
    assert plan == plan_batches(lengths, has_image, batch_size=2)


def test_render_prompt_uses_the_chat_template(tiny):
    _, processor = tiny
    text = render_prompt(processor, "<image>\nHow many?", has_image=True)
    assert text.count("<image>") == 1 and "How many?" in text and text.endswith("assistant\n")
    assert "<image>" not in render_prompt(processor, "How many?", has_image=False)


def test_n_per_prompt_seeded_and_in_input_order(tiny):
    model, processor = tiny
    images = [make_image(seed=i) for i in range(4)]
    kw = dict(n=3, temperature=1.0, top_p=0.95, max_new_tokens=6, batch_size=2, progress=False)
    a = generate_texts(model, processor, PROMPTS, images, seed=5, **kw)
    assert len(a) == 4 and all(len(x) == 3 for x in a)
    assert len({t for x in a for t in x}) > 4  # sampling gives distinct candidates
    assert generate_texts(model, processor, PROMPTS, images, seed=5, **kw) == a
    assert generate_texts(model, processor, PROMPTS, images, seed=6, **kw) != a


def test_batched_left_padded_greedy_equals_one_at_a_time(tiny):
    model, processor = tiny
    images = [make_image(size=(30 + 9 * i, 64), seed=i) for i in range(4)]
    batched = generate_texts(model, processor, PROMPTS, images, max_new_tokens=8, batch_size=4, progress=False)
    single = [generate_texts(model, processor, [p], [im], max_new_tokens=8, progress=False)[0]
              for p, im in zip(PROMPTS, images)]
    assert batched == single


def test_text_only_and_image_prompts_mix_and_greedy_repeats(tiny):
    model, processor = tiny
    out = generate_texts(model, processor, ["<image>\nHow many?", "Name a colour."], [make_image(), None],
                         n=2, max_new_tokens=5, progress=False)
    assert len(out) == 2 and all(x[0] == x[1] for x in out)  # greedy: n identical texts
    beams = generate_texts(model, processor, ["How many?"], [make_image()], n=2, num_beams=2,
                           max_new_tokens=5, progress=False)
    assert len(beams[0]) == 2


def test_generate_batch_counts_tokens_within_budget(tiny):
    model, processor = tiny
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=5)
    texts, n_tokens = generate_batch(model, processor, PROMPTS[:3], [make_image()] * 3, params, seed=1)
    assert len(texts) == 3 and all(len(t) == 2 for t in texts)
    assert 0 < n_tokens <= 3 * 2 * 5
    with pytest.raises(ValueError, match="must not mix"):
        generate_batch(model, processor, PROMPTS[:2], [make_image(), None], params, seed=1)
    assert batch_seed(0, 1) != batch_seed(0, 2) != batch_seed(1, 1)


@pytest.mark.parametrize("temperature, top_p, top_k", [(0.7, 0.9, 0), (1.0, 0.5, 5), (1.3, 1.0, 0)])
def test_shared_prefill_and_fast_nucleus_equal_stock_transformers(tiny, temperature, top_p, top_k):
    """One prefill + expanded KV cache + SamplingWarper draw exactly what stock
    `generate(num_return_sequences=n, temperature, top_p, top_k)` draws for the same seed."""
    model, processor = tiny
    prompts = PROMPTS[:3]
    images = [make_image(seed=i) for i in range(3)]
    params = SamplingParams(n=4, temperature=temperature, top_p=top_p, top_k=top_k, max_new_tokens=10)
    ours, _ = generate_batch(model, processor, prompts, images, params, seed=11)
    inputs = processor(images=images, text=[render_prompt(processor, p, True) for p in prompts],
                       padding=True, padding_side="left", return_tensors="pt")
    torch.manual_seed(11)
    with torch.inference_mode():
        ref = model.generate(**inputs, do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k,
                             num_return_sequences=4, max_new_tokens=10)
    texts = [t.strip() for t in processor.tokenizer.batch_decode(
        ref[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)]
    assert [t for row in ours for t in row] == texts
