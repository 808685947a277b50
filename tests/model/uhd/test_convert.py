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
