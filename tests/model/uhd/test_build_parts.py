"""`arch: uhd` from local folders laid out like clip-vit-large-patch14-336 and Qwen2-7B-Instruct."""

import torch
from safetensors.torch import load_file

from sicog.config import ModelConfig, UhdSettings
from sicog.model.build import build_model
from sicog.model.checkpoint import load_checkpoint, save_checkpoint
from tests.model.conftest import USER_WITH_IMAGE, make_image
from tests.model.test_model_build import write_clip_folder, write_qwen_folder


def test_uhd_builds_from_stand_in_folders_and_reloads(tmp_path):
    clip = write_clip_folder(tmp_path / "clip-vit-large-patch14-336")
    qwen, n_tok = write_qwen_folder(tmp_path / "Qwen2-7B-Instruct")
    model, processor = build_model(ModelConfig(arch="uhd", vision_tower=str(clip), language_model=str(qwen),
                                               uhd=UhdSettings(num_queries=4, separator_init_ids=[13, 29])), seed=0)
    clip_sd, qwen_sd = load_file(str(clip / "model.safetensors")), load_file(str(qwen / "model.safetensors"))
    assert torch.equal(model.model.vision_tower.encoder.layers[0].self_attn.q_proj.weight,
                       clip_sd["vision_model.encoder.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(model.lm_head.weight[:n_tok], qwen_sd["lm_head.weight"])
    tok = processor.tokenizer
    assert len(tok) == n_tok + 3  # <image>, <uhd_row>, <uhd_slice>
    assert model.config.num_queries == 4 and model.config.scale_resolution == 28
    assert model.config.resampler_heads == 1  # LM width 64 / 128, at least one
    prompt = processor.apply_chat_template(USER_WITH_IMAGE, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[make_image((90, 60))], text=[prompt], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all() and logits.shape[-1] == n_tok + 3
    out = save_checkpoint(model, processor, tmp_path / "ckpt", {"stage": "test"})
    model2, processor2 = load_checkpoint(out)
    with torch.no_grad():
        assert torch.allclose(model2(**processor2(images=[make_image((90, 60))], text=[prompt],
                                                  return_tensors="pt")).logits, logits, atol=1e-5)


def test_separators_start_from_the_lm_rows_of_the_authors_ids(tmp_path):
    """`<uhd_row>` / `<uhd_slice>` start as the LM's embedding rows of `model.uhd.separator_init_ids`
    (the authors': 13 and 29892); an id outside the LM's vocabulary is an error naming the key."""
    import pytest

    from sicog.utils.io import SicogError

    clip = write_clip_folder(tmp_path / "clip")
    qwen, n_tok = write_qwen_folder(tmp_path / "qwen")
    embed = load_file(str(qwen / "model.safetensors"))["model.embed_tokens.weight"]
    model, processor = build_model(ModelConfig(arch="uhd", vision_tower=str(clip), language_model=str(qwen),
                                               uhd=UhdSettings(num_queries=4, separator_init_ids=[13, 29])))
    rows = model.get_input_embeddings().weight
    ids = processor.tokenizer.convert_tokens_to_ids
    assert torch.equal(rows[ids("<uhd_row>")], embed[13]) and torch.equal(rows[ids("<uhd_slice>")], embed[29])
    fresh, processor = build_model(ModelConfig(arch="uhd", vision_tower=str(clip), language_model=str(qwen),
                                               uhd=UhdSettings(num_queries=4, separator_init_ids=[])))
    assert not torch.equal(fresh.get_input_embeddings().weight[ids("<uhd_row>")], embed[13])
    with pytest.raises(SicogError, match=rf"model.uhd.separator_init_ids: 29892 is outside .* \({n_tok} rows\)"):
        build_model(ModelConfig(arch="uhd", vision_tower=str(clip), language_model=str(qwen),
                                uhd=UhdSettings(num_queries=4)))
