"""Sizing a model from its configs (meta device): parameters equal the built model's, FLOPs
coefficients equal the counter's on the built model, and model-state memory agrees with
DeepSpeed's own estimators."""

from __future__ import annotations

import re

import pytest

from sicog.config import ModelConfig, TinyModelConfig
from sicog.model.build import build_model
from sicog.model.flops import TrainingFlops
from sicog.model.parts import set_tunable_parts
from sicog.model.size import model_size, model_state_bytes, part_configs
from sicog.model_settings import UhdSettings

SIZES = {"image_size": 32, "patch_size": 8, "vision_hidden_size": 32, "vision_layers": 2, "vision_heads": 2,
         "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 96,
         "vocab_size": 512}
ALL = ["vision_tower", "projector", "language_model"]


def _clip_l_qwen2_7b():
    from transformers import CLIPVisionConfig, Qwen2Config

    return (CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                             image_size=336, patch_size=14),
            Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                        num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False))


@pytest.mark.parametrize("parts", [ALL, ["projector"], ["projector", "language_model"]])
def test_size_from_configs_matches_the_built_model(parts):
    cfg = ModelConfig(preset="tiny", tiny=TinyModelConfig(**SIZES))
    model, processor = build_model(cfg, seed=0)
    model = set_tunable_parts(model, parts, None, {})
    vision, text = part_configs(cfg)
    text.vocab_size = model.config.text_config.vocab_size  # the tokenizer may end below its target size
    size = model_size(vision, text, parts)
    assert size.params == sum(p.numel() for p in model.parameters())
    assert size.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    built = TrainingFlops.of(model)
    assert (size.train.lm_per_token, size.train.lm_per_pair, size.train.per_image) == \
        (built.lm_per_token, built.lm_per_pair, built.per_image)
    assert size.forward.lm_per_token * 3 == size.train.lm_per_token or "language_model" not in parts


def test_image_tokens_llava_and_uhd():
    size = model_size(*_clip_l_qwen2_7b(), ALL)
    assert size.params == pytest.approx(7.94e9, rel=0.01)
    assert size.image_tokens() == 576  # (336 / 14)^2, CLS dropped
    uhd = UhdSettings(num_queries=144)
    # a 336 px image is one overview: 12 x 12 resampler tokens
    assert size.image_tokens("uhd", uhd, (336, 336)) == 144 and size.tower_passes("uhd", uhd, (336, 336)) == 1
    # a 672 x 1008 image: 6 slices (2 x 3), each 12 x 12 tokens, a row separator after every feature row,
    # one separator, then the overview
    assert size.image_tokens("uhd", uhd, (672, 1008)) == 3 * 12 * (2 * 12 + 1) + 1 + 144
    assert size.tower_passes("uhd", uhd, (672, 1008)) == 7


def _deepspeed_gpu_bytes(printed: str) -> float:
    """The per-GPU figure of the no-offload line DeepSpeed's estimator prints."""
    for line in printed.splitlines():
        if "offload_optimizer=none" in line and ("offload_param=none" in line or "offload_param" not in line):
            return float(re.findall(r"([\d.]+)GB", line)[1]) * 2**30
    raise AssertionError(printed)


@pytest.mark.parametrize("gpus", [8, 32])
def test_model_states_agree_with_deepspeed(capsys, gpus):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs_all_cold

    size = model_size(*_clip_l_qwen2_7b(), ALL)  # DeepSpeed's estimators assume every parameter trains
    ours2 = model_state_bytes(size.params, size.trainable, 2, gpus)
    estimate_zero2_model_states_mem_needs_all_cold(size.params, num_gpus_per_node=gpus)
    assert ours2 == pytest.approx(_deepspeed_gpu_bytes(capsys.readouterr().out), rel=0.10)
    ours3 = model_state_bytes(size.params, size.trainable, 3, gpus, size.largest_module)
    estimate_zero3_model_states_mem_needs_all_cold(size.params, size.largest_module, num_gpus_per_node=gpus)
    assert ours3 == pytest.approx(_deepspeed_gpu_bytes(capsys.readouterr().out), rel=0.10)
    # frozen parameters carry no gradient and no optimizer state
    frozen = model_state_bytes(size.params, size.by_part["projector"], 2, gpus)
    assert frozen == int(2 * size.params + 18 * size.by_part["projector"] / gpus)
