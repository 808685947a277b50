"""`sicog convert llava-uhd`: a tiny checkpoint written in the authors' llava_qwen layout converts exactly."""

import json

import pytest
import torch
from safetensors.torch import save_file

from sicog.model.uhd.convert import ConvertUhdConfig, convert
from sicog.utils.io import SicogError
from tests.model.conftest import make_image


def _theirs_from(model) -> dict:
    """Our state dict under the authors' names."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("model.language_model."):
            k = "model." + k[len("model.language_model."):]
        elif k.startswith("model.multi_modal_projector."):
            k = "model.mm_projector." + k[len("model.multi_modal_projector."):]
        elif k.startswith("model.vision_tower."):
            k = "model.vision_tower.vision_tower.vision_model." + k[len("model.vision_tower."):]
        out[k] = v.clone().contiguous()
    return out


@pytest.fixture(scope="module")
def their_folder(tmp_path_factory):
    """A tiny model with the authors' head rule (LM width / 128), saved in their layout."""
    from sicog.config import ModelConfig
    from sicog.model.uhd.build import build_uhd_tiny
    from sicog.model.uhd.modeling_uhd import SicogUhdForConditionalGeneration

    _, processor = build_uhd_tiny(ModelConfig(arch="uhd", preset="tiny"))
    config = build_uhd_tiny(ModelConfig(arch="uhd", preset="tiny"))[0].config
    config.resampler_head_dim = 128
    torch.manual_seed(1)
    model = SicogUhdForConditionalGeneration(config).eval()
    root = tmp_path_factory.mktemp("theirs")
    folder, tower = root / "llava-qwen-uhd", root / "clip"
    folder.mkdir()
    tensors = _theirs_from(model)
    tensors["model.image_newline"] = torch.zeros(config.text_config.hidden_size)
    save_file(tensors, str(folder / "model.safetensors"))
    their_config = {**config.text_config.to_dict(), "model_type": "llava_qwen", "architectures": ["LlavaQwenForCausalLM"],
                    "mm_projector_type": "adapt_spatial_resampler_v1", "mm_hidden_size": config.vision_config.hidden_size,
                    "mm_vision_select_layer": -2, "mm_vision_tower": "openai/clip-vit-large-patch14-336"}
    (folder / "config.json").write_text(json.dumps(their_config))
    processor.tokenizer.save_pretrained(folder)
    config.vision_config.save_pretrained(tower)
    return {"folder": folder, "tower": tower, "model": model, "processor": processor, "tensors": tensors}


def _cfg(theirs, out, **kw):
    ids = theirs["processor"].tokenizer.convert_tokens_to_ids
    kw.setdefault("row_token_id", ids("<uhd_row>"))
    kw.setdefault("slice_token_id", ids("<uhd_slice>"))
    return ConvertUhdConfig(checkpoint=str(theirs["folder"]), vision_tower=str(theirs["tower"]), out=str(out), **kw)


def test_converted_checkpoint_gives_the_same_logits(their_folder, tmp_path):
    from sicog.model.checkpoint import load_checkpoint

    out = convert(_cfg(their_folder, tmp_path / "ours"))
    meta = json.loads((out / "sicog_meta.json").read_text())
    assert meta["unused_tensors"] == ["model.image_newline"] and meta["complete"] is True
    model, processor = load_checkpoint(out)
    original = their_folder["model"]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    batch = processor(images=[make_image((200, 150))], text=[text], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model.eval()(**batch).logits, original(**batch).logits, atol=1e-5)
    assert convert(_cfg(their_folder, tmp_path / "ours")) == out  # same settings: nothing to do
    with pytest.raises(SicogError, match="other settings"):
        convert(_cfg(their_folder, tmp_path / "ours", row_token_id=13))


def test_their_separator_rows_become_our_separator_tokens(their_folder, tmp_path):
    from sicog.model.checkpoint import load_checkpoint

    out = convert(_cfg(their_folder, tmp_path / "ours", row_token_id=13, slice_token_id=14))
    model, processor = load_checkpoint(out)
    embed = model.get_input_embeddings().weight
    theirs = their_folder["tensors"]["model.embed_tokens.weight"]
    assert torch.equal(embed[processor.tokenizer.convert_tokens_to_ids("<uhd_row>")], theirs[13])
    assert torch.equal(embed[processor.tokenizer.convert_tokens_to_ids("<uhd_slice>")], theirs[14])


def test_a_tensor_without_a_place_is_named(their_folder, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in their_folder["folder"].iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    save_file({**their_folder["tensors"], "model.mm_projector.extra_gate": torch.zeros(3)}, str(bad / "model.safetensors"))
    cfg = _cfg(their_folder, tmp_path / "out")
    cfg.checkpoint = str(bad)
    with pytest.raises(SicogError, match=r"cannot place 1 tensor\(s\).*model.mm_projector.extra_gate"):
        convert(cfg)
    assert not (tmp_path / "out").exists()
    shapes = dict(their_folder["tensors"])
    shapes["model.mm_projector.query"] = torch.zeros(9, shapes["model.mm_projector.query"].shape[1])
    save_file(shapes, str(bad / "model.safetensors"))
    with pytest.raises(SicogError, match=r"key model.mm_projector.pos_embed has shape"):
        convert(cfg)


def _copy_folder(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.fixture(scope="module")
def their_4x_folder(their_folder, tmp_path_factory):
    """The same weights with a config.json as transformers 4.x writes their LlavaQwenConfig: a
    top-level rope_theta of 1e6 (no rope_parameters), torch_dtype, LLaVA's training keys."""
    folder = _copy_folder(their_folder["folder"], tmp_path_factory.mktemp("theirs4x") / "llava-qwen-uhd")
    lm = {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if k != "rope_parameters"}
    lm.pop("dtype", None)
    their = {**lm, "rope_theta": 1000000.0, "rope_scaling": None, "torch_dtype": "float32",
             "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 2, "rms_norm_eps": 1e-5,
             "transformers_version": "4.40.0", "image_aspect_ratio": "anyres", "tokenizer_padding_side": "right",
             "tune_mm_mlp_adapter": False, "mm_vision_select_feature": "patch", "mm_use_im_start_end": False}
    (folder / "config.json").write_text(json.dumps(their))
    return {**their_folder, "folder": folder, "config": their}


def test_a_transformers_4_config_keeps_every_lm_setting(their_4x_folder, tmp_path):
    """Text-only logits of the converted model = a stock Qwen2ForCausalLM built from their config
    and weights: rope theta 1e6 survives (a base of 10,000 moves these logits by ~1e-2)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from sicog.model.checkpoint import load_checkpoint

    model, processor = load_checkpoint(convert(_cfg(their_4x_folder, tmp_path / "ours")))
    text = model.config.text_config
    assert text.rope_parameters["rope_theta"] == 1000000.0 and text.rms_norm_eps == 1e-5
    assert not hasattr(text, "image_aspect_ratio") and not hasattr(text, "mm_vision_select_feature")
    lm_keys = {k: v for k, v in their_4x_folder["config"].items() if not k.startswith(("mm_", "image_", "tokenizer_", "tune_"))}
    stock = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in lm_keys.items() if k not in ("model_type", "architectures")}))
    weights = {k: v for k, v in their_4x_folder["tensors"].items()
               if k == "lm_head.weight" or (k.startswith("model.") and not k.startswith(("model.mm_projector.", "model.vision_tower.", "model.image_newline")))}
    assert stock.load_state_dict(weights, strict=True)
    ids = processor.tokenizer("A red square above two small circles, and a blue line.", return_tensors="pt").input_ids
    vocab = stock.config.vocab_size
    with torch.no_grad():
        ours, theirs = model.eval()(input_ids=ids).logits[..., :vocab], stock.eval()(input_ids=ids).logits
    assert (ours - theirs).abs().max() <= 1e-5
    stock.config.rope_parameters["rope_theta"] = 10000.0  # what the converter used to keep
    base_10k = Qwen2ForCausalLM(stock.config).eval()
    base_10k.load_state_dict(weights)
    with torch.no_grad():
        assert (base_10k(input_ids=ids).logits - theirs).abs().max() > 1e-3  # the tolerance tells them apart


def test_bin_shards_convert_like_safetensors(their_folder, tmp_path):
    """PyTorch .bin shards with an index (read with weights_only=True) give the same checkpoint."""
    from safetensors.torch import load_file

    folder = _copy_folder(their_folder["folder"], tmp_path / "bin")
    (folder / "model.safetensors").unlink()
    tensors = their_folder["tensors"]
    names = sorted(tensors)
    half = len(names) // 2
    weight_map = {}
    for k, part in enumerate((names[:half], names[half:])):
        file = f"pytorch_model-{k + 1:05d}-of-00002.bin"
        torch.save({n: tensors[n] for n in part}, folder / file)
        weight_map.update({n: file for n in part})
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    from_bin = convert(_cfg({**their_folder, "folder": folder}, tmp_path / "from_bin"))
    from_st = convert(_cfg(their_folder, tmp_path / "from_st"))
    a = {k: v for f in sorted(from_bin.glob("*.safetensors")) for k, v in load_file(f).items()}
    b = {k: v for f in sorted(from_st.glob("*.safetensors")) for k, v in load_file(f).items()}
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.save({"x": torch.zeros(1), "code": print}, folder / "pytorch_model-00001-of-00002.bin")  # not weights only
    with pytest.raises(SicogError, match=r"pytorch_model-00001-of-00002.bin: cannot read the weights"):
        convert(_cfg({**their_folder, "folder": folder}, tmp_path / "bad"))


def test_their_select_feature_is_honoured(their_folder, tmp_path):
    """`mm_vision_select_feature: cls_patch` gives the resampler the class token and the first h*w - 1
    patches, as their tower does; a multi-layer selection is refused, naming the key."""
    from sicog.model.checkpoint import load_checkpoint

    folder = _copy_folder(their_folder["folder"], tmp_path / "cls")
    their = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**their, "mm_vision_select_feature": "cls_patch"}))
    model, processor = load_checkpoint(convert(_cfg({**their_folder, "folder": folder}, tmp_path / "ours")))
    assert model.config.vision_feature_select == "cls_patch"
    batch = processor.image_processor([make_image((200, 150))], return_tensors="pt")
    with torch.no_grad():
        cls_first = model.model.encode_slices(batch["pixel_values"], batch["slice_sizes"])
        model.config.vision_feature_select = "patch"
        patches = model.model.encode_slices(batch["pixel_values"], batch["slice_sizes"])
    assert all(torch.equal(c[1:], p[:-1]) for c, p in zip(cls_first, patches))
    (folder / "config.json").write_text(json.dumps({**their, "mm_vision_select_feature": "slicefour_patch"}))
    with pytest.raises(SicogError, match=r"config.json: key mm_vision_select_feature is 'slicefour_patch'"):
        convert(_cfg({**their_folder, "folder": folder}, tmp_path / "multi"))
