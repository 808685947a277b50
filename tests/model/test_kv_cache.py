"""The growing KV cache: same tensors as a stock DynamicLayer, in place, robust to transformers
reassigning its keys/values; and generation gives the same token ids with it as with the stock cache."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache, Qwen2Config
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

import sicog.model.generation as generation
from sicog.model.generation import SamplingParams, generate_batch, render_prompt
from sicog.model.kv_cache import GrowingKVLayer, growing_dynamic_cache, use_growing_layers
from tests.model.conftest import make_image


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _states(tokens, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, tokens, 4, generator=g), torch.randn(batch, 3, tokens, 4, generator=g)


def _both(steps):
    """Feed the same updates to a stock and a growing layer; returns both layers."""
    stock, grown = DynamicLayer(), GrowingKVLayer()
    for i, t in enumerate(steps):
        k, v = _states(t, seed=i)
        ref = stock.update(k, v)
        out = grown.update(k, v)
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])
    return stock, grown


def test_updates_write_in_place_and_the_buffer_doubles():
    stock, grown = _both([70] + [1] * 200)
    assert grown.get_seq_length() == stock.get_seq_length() == 270
    # the prompt of 70 allocates 140 positions, the 141st doubles them: two allocations in all
    assert grown.capacity == 282
    before = grown.keys.untyped_storage().data_ptr()
    grown.update(*_states(1, seed=99))
    assert grown.keys.untyped_storage().data_ptr() == before  # no copy of the cache


@pytest.mark.parametrize("change", ["crop", "repeat", "select", "reorder", "offload", "reset"])
def test_a_reassigned_cache_reseeds_the_buffer(change):
    stock, grown = _both([9, 1, 1])
    for layer in (stock, grown):
        if change == "crop":
            layer.crop(-4)
        elif change == "repeat":
            layer.batch_repeat_interleave(3)
        elif change == "select":
            layer.batch_select_indices(torch.tensor([1]))
        elif change == "reorder":
            layer.reorder_cache(torch.tensor([1, 0]))
        elif change == "offload":
            layer.offload()
        else:
            layer.reset()
    batch = stock.keys.shape[0] if stock.is_initialized else 2
    for i in range(3):
        k, v = _states(1 + i, batch=batch, seed=10 + i)
        ref, out = stock.update(k, v), grown.update(k, v)
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


def test_only_plain_dynamic_layers_are_replaced():
    config = Qwen2Config(num_hidden_layers=3, use_sliding_window=True, sliding_window=4,
                         layer_types=["full_attention", "sliding_attention", "full_attention"])
    cache = growing_dynamic_cache(config)
    assert [type(layer) for layer in cache.layers] == [GrowingKVLayer, DynamicSlidingWindowLayer, GrowingKVLayer]
    lazy = use_growing_layers(DynamicCache())
    lazy.update(*_states(2), layer_idx=1)
    assert all(type(layer) is GrowingKVLayer for layer in lazy.layers)


def _token_ids(model, processor, params, monkeypatch, cache_factory):
    """The generated token ids of generate_batch, with `cache_factory` building its caches."""
    monkeypatch.setattr(generation, "growing_dynamic_cache", cache_factory)
    seen = []
    decode = processor.tokenizer.batch_decode

    def recording_decode(ids, **kwargs):
        seen.append(ids.clone())
        return decode(ids, **kwargs)

    monkeypatch.setattr(processor.tokenizer, "batch_decode", recording_decode)
    prompts = ["Describe.", "How many red circles are there at the top of the picture?", "Hi"]
    generate_batch(model, processor, prompts, [make_image(seed=i) for i in range(3)], params, seed=5)
    monkeypatch.undo()
    return seen[0]


@pytest.mark.parametrize("arch", ["llava", "uhd"])
@pytest.mark.parametrize("params", [SamplingParams(n=3, temperature=0.9, top_p=0.9, max_new_tokens=40),
                                    SamplingParams(n=2, max_new_tokens=40),
                                    SamplingParams(n=2, num_beams=2, max_new_tokens=12)],
                         ids=["sample", "greedy", "beams"])
def test_generation_gives_the_same_ids_as_the_stock_cache(arch, params, request, monkeypatch):
    model, processor = request.getfixturevalue("tiny" if arch == "llava" else "tiny_uhd")
    assert generation._can_share_prefill(model)
    ours = _token_ids(model, processor, params, monkeypatch, growing_dynamic_cache)
    stock = _token_ids(model, processor, params, monkeypatch, lambda config: DynamicCache(config=config))
    assert ours.shape[0] == 3 * (params.n if params.do_sample or params.num_beams > 1 else 1)
    assert torch.equal(ours, stock)


def test_uhd_shared_prefill_equals_stock_sampling(tiny_uhd):
    """The uhd arch takes its cache as `cache=`: the shared prefill must reach it (and the image)."""
    model, processor = tiny_uhd
    prompts = ["Describe.", "How many?"]
    images = [make_image(seed=i) for i in range(2)]
    ours, _ = generate_batch(model, processor, prompts, images,
                             SamplingParams(n=3, temperature=1.0, max_new_tokens=12), seed=3)
    inputs = processor(images=images, text=[render_prompt(processor, p, True) for p in prompts],
                       padding=True, padding_side="left", return_tensors="pt")
    torch.manual_seed(3)
    with torch.inference_mode():
        ref = model.generate(**inputs, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                             num_return_sequences=3, max_new_tokens=12)
    texts = [t.strip() for t in processor.tokenizer.batch_decode(
        ref[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)]
    assert [t for row in ours for t in row] == texts
