"""build_model: source selection, and the real-scale path on small stand-in folders laid out like
`clip-vit-large-patch14-336` and `Qwen2-7B-Instruct`."""

from __future__ import annotations

import json

import pytest
import torch

from sicog.config import ModelConfig, TinyModelConfig
from sicog.model.build import build_model
from sicog.model.checkpoint import load_checkpoint, save_checkpoint, save_projector
from sicog.utils.io import SicogError

from .conftest import USER_WITH_IMAGE, make_image

# A string-only ChatML template like the one Qwen2-7B-Instruct ships in tokenizer_config.json.
QWEN_LIKE_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CLIP_SIZE, CLIP_PATCH = 28, 14  # the real tower: 336 / 14


def write_clip_folder(path):
    """Full CLIPConfig (text + vision), CLIP weights, old-style preprocessor_config.json."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 100, "max_position_embeddings": 16},
        vision_config={"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 2,
                       "image_size": CLIP_SIZE, "patch_size": CLIP_PATCH},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(path)
    # the layout of openai/clip-vit-large-patch14-336: integer sizes, feature-extractor keys
    (path / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": CLIP_SIZE, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3, "size": CLIP_SIZE,
    }))
    return path


def write_qwen_folder(path, extra_vocab: int = 0):
    """Qwen2 config + weights + a Qwen2Tokenizer with its chat template in tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(["how many red circles are there in the image answer"] * 3, trainer=trainer)
    model_json = json.loads(bpe.to_str())["model"]
    tok = Qwen2Tokenizer(vocab=model_json["vocab"], merges=[tuple(m) for m in model_json["merges"]],
                         eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None)
    tok.add_special_tokens({"extra_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.save_pretrained(path)
    cfg_file = path / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_file.read_text())
    tok_cfg["chat_template"] = QWEN_LIKE_TEMPLATE
    cfg_file.write_text(json.dumps(tok_cfg))
    (path / "chat_template.jinja").unlink(missing_ok=True)

    torch.manual_seed(1)
    config = Qwen2Config(vocab_size=len(tok) + extra_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    lm = Qwen2ForCausalLM(config)
    lm.generation_config = GenerationConfig(eos_token_id=[tok.eos_token_id, 0], pad_token_id=0, do_sample=True,
                                            temperature=0.7, top_p=0.8)
    lm.save_pretrained(path)
    return path, len(tok)


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    root = tmp_path_factory.mktemp("standins")
    clip = write_clip_folder(root / "clip-vit-large-patch14-336")
    qwen, n_tok = write_qwen_folder(root / "Qwen2-7B-Instruct")
    return clip, qwen, n_tok


def test_real_scale_layout_builds_and_runs(standins, tmp_path):
    from safetensors.torch import load_file

    clip, qwen, n_tok = standins
    cfg = ModelConfig(vision_tower=str(clip), language_model=str(qwen))
    model, processor = build_model(cfg, seed=0)

    # the pretrained weights were loaded, not re-initialised
    clip_sd, qwen_sd = load_file(str(clip / "model.safetensors")), load_file(str(qwen / "model.safetensors"))
    vt = model.model.vision_tower.encoder.layers[0].self_attn.q_proj.weight
    assert torch.equal(vt, clip_sd["vision_model.encoder.layers.0.self_attn.q_proj.weight"])
    q = model.model.language_model.layers[1].mlp.up_proj.weight
    assert torch.equal(q, qwen_sd["model.layers.1.mlp.up_proj.weight"])
    assert torch.equal(model.lm_head.weight[:n_tok], qwen_sd["lm_head.weight"])

    # <image> added as one token (embeddings resized), ChatML template replaced by ours
    tok = processor.tokenizer
    assert len(tok) == n_tok + 1 and model.get_input_embeddings().weight.shape[0] == n_tok + 1
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<image>")
    assert model.config.vision_feature_layer == -2 and model.config.vision_feature_select_strategy == "default"
    assert type(processor.image_processor).__name__ == "CLIPImageProcessorPil"
    prompt = processor.apply_chat_template(USER_WITH_IMAGE, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>user\n<image>\nHow many red circles are there?<|im_end|>" in prompt
    inputs = processor(images=[make_image()], text=[prompt], return_tensors="pt")
    assert inputs["pixel_values"].shape[-2:] == (CLIP_SIZE, CLIP_SIZE)
    n_img = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_img == (CLIP_SIZE // CLIP_PATCH) ** 2 == model.config.image_seq_length
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], n_tok + 1) and torch.isfinite(logits).all()
    assert model.generation_config.temperature == 0.7  # the LM's own generation settings are kept

    # the assembled model saves and reloads as a plain LLaVA checkpoint with identical outputs
    out = save_checkpoint(model, processor, tmp_path / "ckpt", {"stage": "test"})
    model2, processor2 = load_checkpoint(out)
    inputs2 = processor2(images=[make_image()], text=[prompt], return_tensors="pt")
    assert torch.equal(inputs2["input_ids"], inputs["input_ids"])
    with torch.no_grad():
        assert torch.allclose(model2(**inputs2).logits, logits, atol=1e-5, rtol=0)

    # continuing from that checkpoint through the config
    model3, _ = build_model(ModelConfig(checkpoint=str(out)))
    assert torch.equal(model3.lm_head.weight, model.lm_head.weight)


def test_mm_projector_is_loaded(standins, tmp_path):
    clip, qwen, _ = standins
    trained, _ = build_model(ModelConfig(vision_tower=str(clip), language_model=str(qwen)), seed=5)
    proj_file = save_projector(trained, tmp_path / "mm_projector.safetensors")
    fresh, _ = build_model(ModelConfig(vision_tower=str(clip), language_model=str(qwen)), seed=0)
    loaded, _ = build_model(
        ModelConfig(vision_tower=str(clip), language_model=str(qwen), mm_projector=str(proj_file)), seed=0
    )
    w = lambda m: m.model.multi_modal_projector.linear_2.weight  # noqa: E731
    assert not torch.equal(w(fresh), w(trained))
    assert torch.equal(w(loaded), w(trained))


def test_no_resize_when_vocab_has_room(tmp_path):
    clip = write_clip_folder(tmp_path / "clip")
    qwen, n_tok = write_qwen_folder(tmp_path / "qwen", extra_vocab=8)
    model, processor = build_model(ModelConfig(vision_tower=str(clip), language_model=str(qwen)))
    assert model.get_input_embeddings().weight.shape[0] == n_tok + 8
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == n_tok


def test_tiny_tokenizer_corpus_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("quuxotic quuxotic\n\nquuxotic zebra\n")
    _, proc = build_model(ModelConfig(preset="tiny", tiny=TinyModelConfig(tokenizer_corpus=[str(corpus)])))
    _, base = build_model(ModelConfig(preset="tiny"))
    assert len(proc.tokenizer.tokenize(" quuxotic")) < len(base.tokenizer.tokenize(" quuxotic"))


def test_tiny_preset_is_seeded_and_sized():
    cfg = ModelConfig(preset="tiny", tiny=TinyModelConfig(num_layers=2))
    a, proc = build_model(cfg, seed=3)
    b, _ = build_model(cfg, seed=3)
    c, _ = build_model(cfg, seed=4)
    wa, wb, wc = (m.model.language_model.layers[0].self_attn.q_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert len(a.model.language_model.layers) == 2
    assert a.config.text_config.vocab_size == len(proc.tokenizer)
    assert a.config.image_seq_length == 16 and proc.image_processor.crop_size["height"] == 64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one source"),
        ({"preset": "tiny", "checkpoint": "x"}, "exactly one source"),
        ({"vision_tower": "a"}, "must be given together"),
        ({"checkpoint": "/nonexistent"}, "not a checkpoint folder"),
        ({"vision_tower": "/no/clip", "language_model": "/no/lm"}, "model.vision_tower"),
        ({"preset": "tiny", "mm_projector": "/no/proj.safetensors"}, "model.mm_projector"),
        ({"preset": "tiny", "tiny": TinyModelConfig(tokenizer_corpus=["/no/corpus.txt"])}, "tokenizer_corpus"),
    ],
)
def test_source_errors(kwargs, message):
    with pytest.raises(SicogError, match=message):
        build_model(ModelConfig(**kwargs))
