"""Tunable parts: freezing, parameter table, LoRA wrap + merge, per-part learning rates."""

from __future__ import annotations

import json

import pytest
import torch

from sicog.config import LoraSettings
from sicog.model.checkpoint import load_checkpoint, save_checkpoint
from sicog.model.parts import (
    merge_lora,
    param_groups,
    parameter_counts,
    parameter_table,
    part_of,
    set_tunable_parts,
)
from sicog.utils.io import SicogError

from .conftest import USER_WITH_IMAGE, make_image


def _sizes(model):
    vt = sum(p.numel() for p in model.model.vision_tower.parameters())
    pj = sum(p.numel() for p in model.model.multi_modal_projector.parameters())
    lm = sum(p.numel() for p in model.model.language_model.parameters()) + model.lm_head.weight.numel()
    return vt, pj, lm


def test_freeze_parts_and_table(tiny_ckpt):
    model, _ = load_checkpoint(tiny_ckpt)
    vt, pj, lm = _sizes(model)
    out = set_tunable_parts(model, ["projector"], None, {"projector": 2e-4})
    assert out is model
    counts = parameter_counts(model)
    assert counts["projector"] == {"trainable": pj, "frozen": 0}
    assert counts["vision_tower"] == {"trainable": 0, "frozen": vt}
    assert counts["language_model"] == {"trainable": 0, "frozen": lm}
    table = parameter_table(model)
    assert f"{pj:,}" in table and f"{vt + pj + lm:,}" in table.splitlines()[-1]
    assert [ln.split()[0] for ln in table.splitlines() if ln[0].isalpha()] == [
        "part", "vision_tower", "projector", "language_model", "total"]

    set_tunable_parts(model, ["vision_tower", "language_model"])
    counts = parameter_counts(model)
    assert counts["vision_tower"]["trainable"] == vt and counts["projector"]["trainable"] == 0
    assert counts["language_model"]["trainable"] == lm


def test_part_errors(tiny_ckpt):
    model, _ = load_checkpoint(tiny_ckpt)
    with pytest.raises(SicogError, match="unknown part"):
        set_tunable_parts(model, ["projecter"])
    with pytest.raises(SicogError, match="at least one"):
        set_tunable_parts(model, [])
    with pytest.raises(SicogError, match="frozen part has no learning rate"):
        set_tunable_parts(model, ["projector"], None, {"language_model": 1e-5})
    with pytest.raises(SicogError, match="needs 'language_model'"):
        set_tunable_parts(model, ["projector"], LoraSettings(enabled=True))
    with pytest.raises(ValueError, match="no known part"):
        part_of("model.something_else.weight")


def test_param_groups_per_part_lr(tiny_ckpt):
    model, _ = load_checkpoint(tiny_ckpt)
    set_tunable_parts(model, ["projector", "language_model"], None, {"projector": 2e-4})
    groups = param_groups(model, 2e-5, {"projector": 2e-4}, weight_decay=0.1)
    by_name = {g["name"]: g for g in groups}
    assert by_name["projector"]["lr"] == 2e-4 and by_name["language_model"]["lr"] == 2e-5
    assert by_name["projector/no_decay"]["weight_decay"] == 0.0 and by_name["projector"]["weight_decay"] == 0.1
    grouped = {id(p) for g in groups for p in g["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert grouped == trainable  # every trainable parameter once, no frozen one
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    opt = torch.optim.AdamW(groups)  # usable as is
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in groups]
    assert {g["name"] for g in param_groups(model, 1e-3)} == {"projector", "language_model"}


def test_lora_trains_merges_and_saves_plain_llava(tiny_ckpt, tmp_path):
    model, processor = load_checkpoint(tiny_ckpt)
    vt, pj, lm = _sizes(model)
    lm_weight = model.model.language_model.layers[0].self_attn.q_proj.weight.detach().clone()
    proj_weight = model.model.multi_modal_projector.linear_1.weight.detach().clone()
    vt_weight = model.model.vision_tower.encoder.layers[0].self_attn.q_proj.weight.detach().clone()
    lora = LoraSettings(enabled=True, r=4, alpha=8, dropout=0.0)
    wrapped = set_tunable_parts(model, ["projector", "language_model"], lora)
    counts = parameter_counts(wrapped)
    assert counts["vision_tower"]["trainable"] == 0
    assert counts["projector"]["trainable"] == pj
    assert 0 < counts["language_model"]["trainable"] < lm  # adapters only
    names = [n for n, p in wrapped.named_parameters() if p.requires_grad and "lora_" in n]
    assert names and all(".language_model." in n for n in names)  # never in CLIP's q/k/v

    prompt = processor.apply_chat_template(
        USER_WITH_IMAGE + [{"role": "assistant", "content": "Two."}], tokenize=False)
    inputs = processor(images=[make_image()], text=[prompt], return_tensors="pt")
    opt = torch.optim.SGD(param_groups(wrapped, 0.5), lr=0.5)
    wrapped.train()
    for _ in range(2):
        loss = wrapped(**inputs, labels=inputs["input_ids"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    wrapped.eval()
    with torch.no_grad():
        adapted = wrapped(**inputs).logits

    with pytest.raises(SicogError, match="merge_lora"):
        save_checkpoint(wrapped, processor, tmp_path / "x", {})
    assert not (tmp_path / "x").exists()
    merged = merge_lora(wrapped)
    assert type(merged).__name__ == "LlavaForConditionalGeneration" and not hasattr(merged, "peft_config")
    assert merge_lora(merged) is merged
    with torch.no_grad():
        assert torch.allclose(merged(**inputs).logits, adapted, atol=1e-4, rtol=0)
    assert not torch.equal(merged.model.language_model.layers[0].self_attn.q_proj.weight, lm_weight)
    assert not torch.equal(merged.model.multi_modal_projector.linear_1.weight, proj_weight)
    assert torch.equal(merged.model.vision_tower.encoder.layers[0].self_attn.q_proj.weight, vt_weight)

    out = save_checkpoint(merged, processor, tmp_path / "merged", {"stage": "lora"})
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlavaForConditionalGeneration"]
    assert not (out / "adapter_config.json").exists()
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as fh:
        keys = list(fh.keys())
    assert not [k for k in keys if "lora" in k or "modules_to_save" in k or "original_module" in k]
    reloaded, _ = load_checkpoint(out)
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs).logits, adapted, atol=1e-4, rtol=0)
