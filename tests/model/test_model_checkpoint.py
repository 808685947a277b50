"""Checkpoint folders: stock loading without sicog, completeness, projector files, image tokens."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from sicog.model.build import make_processor
from sicog.model.checkpoint import (
    META_FILE,
    checkpoint_problems,
    load_checkpoint,
    load_projector,
    save_checkpoint,
    save_projector,
)
from sicog.model.tiny import make_tiny_checkpoint
from sicog.utils.io import SicogError

from .conftest import USER_WITH_IMAGE, make_image

STOCK_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, torch
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    path, out = sys.argv[1], sys.argv[2]
    processor = AutoProcessor.from_pretrained(path)
    model = LlavaForConditionalGeneration.from_pretrained(path).eval()
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image"},
                 {"type": "text", "text": "How many red circles are there?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert "sicog" not in sys.modules, "the stock loader imported sicog"
    np.save(out, logits.numpy())
    print(prompt)
    """
)


def _logits(model, processor, image, messages=USER_WITH_IMAGE):
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**inputs).logits, inputs


def test_stock_transformers_loads_checkpoint_without_sicog(tiny_ckpt, tmp_path):
    out = tmp_path / "logits.npy"
    proc = subprocess.run(
        [sys.executable, "-c", STOCK_SCRIPT, str(tiny_ckpt), str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "<image>\nHow many red circles are there?" in proc.stdout
    model, processor = load_checkpoint(tiny_ckpt)
    ours, _ = _logits(model, processor, make_image(seed=0))
    stock = torch.from_numpy(np.load(out))
    assert stock.shape == ours.shape
    assert torch.allclose(stock, ours, atol=1e-5, rtol=0), (stock - ours).abs().max()


def test_image_tokens_match_vision_features(tiny_ckpt):
    model, processor = load_checkpoint(tiny_ckpt)
    logits, inputs = _logits(model, processor, make_image())
    n_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    with torch.no_grad():
        feats = model.model.get_image_features(pixel_values=inputs["pixel_values"])
    feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    n_features = sum(f.shape[0] for f in feats) if isinstance(feats, (list, tuple)) else feats.shape[0] * feats.shape[1]
    assert n_tokens == n_features == (64 // 16) ** 2 == model.config.image_seq_length
    assert logits.shape[1] == inputs["input_ids"].shape[1]

    # Without counting CLS the processor is one token short and the forward pass must fail:
    # this is what makes the check above meaningful.
    short = make_processor(processor.image_processor, processor.tokenizer, processor.patch_size)
    short.num_additional_image_tokens = 0
    prompt = short.apply_chat_template(USER_WITH_IMAGE, add_generation_prompt=True, tokenize=False)
    bad = short(images=[make_image()], text=[prompt], return_tensors="pt")
    assert int((bad["input_ids"] == model.config.image_token_id).sum()) == n_tokens - 1
    with pytest.raises(ValueError, match="[Ii]mage features and image tokens do not match"):
        model(**bad)


def test_checkpoint_folder_contents_and_meta(tiny_ckpt):
    names = {p.name for p in tiny_ckpt.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "chat_template.jinja", META_FILE} <= names
    meta = json.loads((tiny_ckpt / META_FILE).read_text())
    assert meta["complete"] is True and list(meta)[-1] == "complete"
    assert meta["stage"] == "init" and "git_commit" in meta
    config = json.loads((tiny_ckpt / "config.json").read_text())
    assert config["model_type"] == "llava" and config["vision_feature_layer"] == -2
    assert config["text_config"]["model_type"] == "qwen2"
    assert checkpoint_problems(tiny_ckpt) == []


def test_incomplete_folder_is_refused(tiny_ckpt, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(tiny_ckpt, partial)
    meta = json.loads((partial / META_FILE).read_text())
    meta.pop("complete")
    (partial / META_FILE).write_text(json.dumps(meta))
    assert checkpoint_problems(partial)
    with pytest.raises(SicogError, match='not a complete checkpoint: sicog_meta.json lacks "complete": true'):
        load_checkpoint(partial)
    with pytest.raises(SicogError, match="not found"):
        load_checkpoint(tmp_path / "missing")
    # each file a loader needs, missing in turn, is named (the meta says complete)
    for name, why in [("model.safetensors", "no model weights"), ("processor_config.json", "no processor"),
                      ("tokenizer.json", "no tokenizer"), ("config.json", "no readable config.json")]:
        broken = tmp_path / f"without-{name}"
        shutil.copytree(tiny_ckpt, broken)
        (broken / name).unlink()
        assert checkpoint_problems(broken)
        with pytest.raises(SicogError, match=f"not a complete checkpoint: .*{why}"):
            load_checkpoint(broken)
    other = tmp_path / "not-llava"
    shutil.copytree(tiny_ckpt, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "qwen2"}))
    assert checkpoint_problems(other) == ["config.json has model_type 'qwen2', not 'llava' (or 'sicog_uhd')"]


def _save_stock(model, processor, folder, **kwargs):
    """What transformers alone writes for a LLaVA model: no sicog meta, no atomic rename."""
    model.save_pretrained(folder, **kwargs)
    processor.save_pretrained(folder)
    assert not (folder / META_FILE).exists()
    return folder


def test_stock_llava_folder_loads_through_sample_and_evaluate_loaders(tiny, tmp_path):
    """A llava-hf style folder saved by plain transformers (sharded, like llava-1.5-7b-hf) is a
    complete checkpoint for `load_checkpoint` (sicog sample's hf backend, model.checkpoint) and
    for `checkpoint_predictor` (sicog evaluate)."""
    from sicog.eval.predict import checkpoint_predictor

    model, processor = tiny
    stock = _save_stock(model, processor, tmp_path / "llava-tiny-hf", max_shard_size="1MB")
    shards = sorted(p.name for p in stock.glob("model-*.safetensors"))
    assert len(shards) > 1 and (stock / "model.safetensors.index.json").is_file()
    assert checkpoint_problems(stock) == []
    loaded, loaded_processor = load_checkpoint(stock)
    ours, _ = _logits(model, processor, make_image(seed=0))
    theirs, _ = _logits(loaded, loaded_processor, make_image(seed=0))
    assert torch.equal(ours, theirs)
    predict = checkpoint_predictor(stock, batch_size=2, max_new_tokens=3, device="cpu")
    replies = predict([("How many circles?", make_image(seed=1)), ("Say hi.", None)])
    assert len(replies) == 2 and all(isinstance(r, str) for r in replies)
    # a shard listed in the index but missing: incomplete, and the message names it
    (stock / shards[-1]).unlink()
    with pytest.raises(SicogError, match=f"weight shard\\(s\\) {shards[-1]} missing"):
        load_checkpoint(stock)


def test_failed_save_leaves_no_folder(tiny_ckpt, tmp_path):
    model, processor = load_checkpoint(tiny_ckpt)

    class Boom:
        def save_pretrained(self, path):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(model, Boom(), tmp_path / "out", {"stage": "x"})
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []


def test_projector_roundtrip(tiny_ckpt, tmp_path):
    model, _ = load_checkpoint(tiny_ckpt)
    path = save_projector(model, tmp_path / "mm_projector.safetensors")
    other = make_tiny_checkpoint(tmp_path / "other", seed=1)
    model2, _ = load_checkpoint(other)
    p1, p2 = model.model.multi_modal_projector, model2.model.multi_modal_projector
    assert not torch.equal(p1.linear_1.weight, p2.linear_1.weight)
    lm_before = model2.lm_head.weight.clone()
    load_projector(model2, path)
    for k, v in p1.state_dict().items():
        assert torch.equal(v, p2.state_dict()[k]), k
    assert torch.equal(lm_before, model2.lm_head.weight)  # only the projector changed


def test_projector_errors(tiny_ckpt, tmp_path):
    from safetensors.torch import save_file

    model, _ = load_checkpoint(tiny_ckpt)
    with pytest.raises(SicogError, match="not found"):
        load_projector(model, tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    save_file({"linear_1.weight": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(SicogError, match="keys"):
        load_projector(model, bad)
    # LLaVA's original naming (mm_projector.0 / .2) is accepted
    sd = model.model.multi_modal_projector.state_dict()
    orig = {f"model.mm_projector.{'0' if k.startswith('linear_1') else '2'}.{k.split('.')[-1]}": v.clone() for k, v in sd.items()}
    save_file(orig, str(tmp_path / "orig.safetensors"))
    load_projector(model, tmp_path / "orig.safetensors")


def test_build_from_checkpoint_ours_and_stock(tiny_ckpt, tmp_path):
    from sicog.config import ModelConfig
    from sicog.model.build import build_model

    ours, _ = build_model(ModelConfig(checkpoint=str(tiny_ckpt)))
    stock = tmp_path / "llava-hf-like"
    shutil.copytree(tiny_ckpt, stock)
    (stock / META_FILE).unlink()  # a stock LLaVA folder has no sicog meta: loaded as is
    model, processor = build_model(ModelConfig(checkpoint=str(stock)))
    assert torch.equal(model.lm_head.weight, ours.lm_head.weight)
    assert processor.num_additional_image_tokens == 1
    (stock / META_FILE).write_text(json.dumps({"stage": "x"}))  # ours, but never completed
    with pytest.raises(SicogError, match="not a complete checkpoint"):
        build_model(ModelConfig(checkpoint=str(stock)))


def _tensor_names(folder):
    from safetensors import safe_open

    names = set()
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            names |= set(fh.keys())
    return names


@pytest.mark.parametrize("shard", [None, "20KB"])
def test_clip_tower_saved_under_vllm_names_and_reloads_bit_identically(tiny, tmp_path, shard):
    """The tower is stored as `vision_tower.vision_model.*` (what vLLM and llava-hf folders use);
    stock transformers reads it back bit-identically, single file or sharded."""
    from sicog.model.checkpoint import CLIP_TOWER_PREFIX, nest_clip_tower_keys

    model, processor = tiny
    if shard is None:
        out = save_checkpoint(model, processor, tmp_path / "ck")
    else:  # many shards: the index is rewritten with the files. A model built here (one loaded
        # from the nested layout is written back in it by transformers' reverse conversion)
        from sicog.config import ModelConfig
        from sicog.model.build import build_model

        model, processor = build_model(ModelConfig(arch="llava", preset="tiny"))
        out = tmp_path / "ck"
        model.save_pretrained(out, max_shard_size=shard)
        processor.save_pretrained(out)
        assert nest_clip_tower_keys(out)
        index = json.loads((out / "model.safetensors.index.json").read_text())
        assert all(not k.startswith("vision_tower.") or k.startswith(CLIP_TOWER_PREFIX) for k in index["weight_map"])
        assert set(index["weight_map"]) == _tensor_names(out)
    names = _tensor_names(out)
    tower = {n for n in names if n.startswith("vision_tower.")}
    assert tower and all(n.startswith(CLIP_TOWER_PREFIX) for n in tower)
    assert {"vision_tower.vision_model.embeddings.patch_embedding.weight",
            "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight"} <= tower
    assert not nest_clip_tower_keys(out)  # already in that layout: nothing to do

    from transformers import LlavaForConditionalGeneration

    again, info = LlavaForConditionalGeneration.from_pretrained(str(out), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    mine, theirs = model.state_dict(), again.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
