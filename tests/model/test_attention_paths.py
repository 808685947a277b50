"""Which attention each part of a model runs when flash-attention-2 is chosen, and with which mask.

flash-attention unpads sequences from a 2-D 0/1 mask (or, with no mask, from positions that restart
at 0); a 4-D additive mask handed to it is not understood. This CPU has no flash-attn, so the
fixture makes it look available: transformers accepts `flash_attention_2`, sicog resolves `auto`
to it, and the attention function registered under that name is a probe that records who calls it
with what, then computes what flash-attention computes from those inputs (causal, padding from a
2-D mask, sequence boundaries from restarting positions) so the outputs can be compared.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from sicog.config import ModelConfig
from tests.model.conftest import make_image


@pytest.fixture
def flash_looks_available(monkeypatch):
    from transformers import PreTrainedModel
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from sicog.model import kernels

    calls: list[dict] = []

    def probe(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
        if attention_mask is not None and attention_mask.dim() != 2:
            calls.append({"module": type(module).__name__, "mask_dim": attention_mask.dim()})
            raise AssertionError(f"{type(module).__name__} handed flash_attention_2 a {attention_mask.dim()}-D mask")
        positions = kwargs.get("position_ids")
        calls.append({"module": type(module).__name__, "mask_dim": None if attention_mask is None else 2,
                      "position_ids": positions})
        length = query.shape[2]
        causal = module.is_causal if is_causal is None else is_causal
        allowed = torch.ones(query.shape[0], 1, length, length, dtype=torch.bool, device=query.device)
        if causal:
            allowed = allowed.tril()
        if attention_mask is not None:
            allowed = allowed & attention_mask[:, None, None, :].bool()
        elif positions is not None:  # packed: a sequence starts wherever the positions restart at 0
            segment = (positions == 0).cumsum(-1)
            allowed = allowed & (segment[:, None, :, None] == segment[:, None, None, :])
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=scaling,
                                             enable_gqa=query.shape[1] != key.shape[1])
        return out.nan_to_num(0.0).transpose(1, 2).contiguous(), None

    monkeypatch.setitem(ALL_ATTENTION_FUNCTIONS._global_mapping, "flash_attention_2", probe)
    monkeypatch.setattr(PreTrainedModel, "_check_and_adjust_attn_implementation",
                        lambda self, impl, *a, **k: impl)
    monkeypatch.setattr(kernels, "flash_attention_problem", lambda: None)
    return calls


def _mixed_batch(processor):
    """Two images of different sizes (for uhd: different slice counts) and prompts of different lengths."""
    texts = []
    for question in ("How many?", "What colour is the large shape on the left of the picture?"):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        texts.append(processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    processor.tokenizer.padding_side = "left"
    return processor(images=[make_image((200, 150), seed=1), make_image((64, 64), seed=2)], text=texts,
                     return_tensors="pt", padding=True)


@pytest.mark.parametrize("arch", ["uhd", "llava"])
def test_flash_attention_never_reaches_the_tower_with_a_4d_mask(arch, flash_looks_available):
    from sicog.model.build import build_model

    model, processor = build_model(ModelConfig(arch=arch, preset="tiny", attn_implementation="auto"))
    model.eval()
    assert model.config.text_config._attn_implementation == "flash_attention_2"
    batch = _mixed_batch(processor)
    if arch == "uhd":
        sizes = {tuple(s) for s in batch["slice_sizes"].tolist()}
        assert len(sizes) > 1  # slices of several sizes: the tower pads and masks them
    with torch.no_grad():
        logits = model(**batch).logits
    callers = {c["module"] for c in flash_looks_available}
    assert any("Qwen2" in name for name in callers)
    assert all(c["mask_dim"] in (None, 2) for c in flash_looks_available)
    if arch == "uhd":  # the uhd tower runs under sdpa, whatever the LM uses
        assert not any("CLIP" in name for name in callers)
    else:  # llava's tower sees whole images of one size: flash-attention, no mask
        assert any("CLIP" in c["module"] and c["mask_dim"] is None for c in flash_looks_available)
    # the same weights under sdpa give the same logits at every real token
    model.config._attn_implementation = "sdpa"
    with torch.no_grad():
        reference = model(**batch).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(logits[real], reference[real], atol=1e-5)


def test_uhd_tower_attention_is_pinned_whatever_the_model_is_set_to(flash_looks_available):
    from sicog.model.build import build_model

    model, _ = build_model(ModelConfig(arch="uhd", preset="tiny", attn_implementation="sdpa"))
    model.config._attn_implementation = "flash_attention_2"  # as a later set_attn_implementation would
    assert model.model.vision_tower.config._attn_implementation == "flash_attention_2"
    assert model.model.tower_attention() == "sdpa"
    model.config._attn_implementation = "eager"
    assert model.model.tower_attention() == "eager"  # eager takes the 4-D mask too: kept


def test_packed_rows_reach_flash_attention_as_restarting_positions(flash_looks_available, tmp_path):
    """Packing + flash-attention: no mask, positions that restart per sample, so flash-attention
    keeps every sample to itself; the loss equals the padded batch's."""
    from sicog.data.dataset import DataCollator
    from sicog.data.packing import PackingCollator
    from sicog.model.build import build_model

    model, processor = build_model(ModelConfig(preset="tiny", attn_implementation="auto"))
    model.eval()
    image = make_image((64, 64), seed=3)
    examples = []
    for k, answer in enumerate(("Two circles.", "A red square above a small blue triangle, near the edge.")):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Question {k}?"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        text = processor.apply_chat_template(messages, tokenize=False)
        enc = processor(images=[image], text=[text], return_tensors="pt")
        ids = enc["input_ids"][0]
        examples.append({"input_ids": ids, "labels": ids.clone(), "pixel_values": enc["pixel_values"][0]})
    packed = PackingCollator(processor)(examples)
    with torch.no_grad():
        packed_loss = model(**packed).loss
    lm_calls = [c for c in flash_looks_available if "Qwen2" in c["module"]]
    assert lm_calls and all(c["mask_dim"] is None for c in lm_calls)
    positions = lm_calls[0]["position_ids"]
    assert positions is not None and int((positions[0] == 0).sum()) == 2  # two samples, two restarts
    model.config._attn_implementation = "sdpa"
    with torch.no_grad():
        padded_loss = model(**DataCollator(processor)(examples)).loss
    assert abs(float(packed_loss) - float(padded_loss)) <= 1e-5 * abs(float(padded_loss))
