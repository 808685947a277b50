"""Model FLOPs of a training micro-batch agree exactly with PyTorch's own FLOP counter over a
real forward + backward, whichever parts train (frozen parts skip their backward matmuls)."""

from __future__ import annotations

import pytest
from torch.utils.flop_counter import FlopCounterMode

from sicog.config import ModelConfig, TinyModelConfig
from sicog.model.build import build_model
from sicog.model.flops import TrainingFlops
from sicog.model.parts import set_tunable_parts

from .conftest import USER_WITH_IMAGE, make_image

SIZES = {"image_size": 32, "patch_size": 8, "vision_hidden_size": 32, "vision_layers": 2, "vision_heads": 2,
         "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 96,
         "vocab_size": 512}


@pytest.mark.parametrize("parts", [["vision_tower", "projector", "language_model"], ["projector"],
                                   ["projector", "language_model"]])
def test_training_flops_match_torch_flop_counter(parts):
    # eager attention: the counter sees its two matmuls (QK^T over all pairs, AV) directly
    model, processor = build_model(ModelConfig(preset="tiny", tiny=TinyModelConfig(**SIZES),
                                               attn_implementation="eager"), seed=0)
    model = set_tunable_parts(model, parts, None, {}).train()
    text = processor.apply_chat_template(USER_WITH_IMAGE, add_generation_prompt=True, tokenize=False)
    batch = processor(images=[make_image()], text=[text + "Two."], return_tensors="pt")
    batch["labels"] = batch["input_ids"].clone()
    n = int(batch["input_ids"].shape[1])
    with FlopCounterMode(display=False) as counter:
        model(**batch).loss.backward()
    flops = TrainingFlops.of(model)
    # the counter charges every query-key pair (the causal mask is a tensor to it): n^2, not n(n+1)/2
    expected = flops.lm_per_token * n + flops.lm_per_pair * n * n + flops.per_image
    assert counter.get_total_flops() == pytest.approx(expected, rel=1e-9)
    causal = flops.batch_flops([n], n_images=1)
    assert causal == expected - flops.lm_per_pair * (n * n - n * (n + 1) // 2)


def test_padding_adds_no_flops_and_attention_grows_with_sample_length():
    model, _ = build_model(ModelConfig(preset="tiny", tiny=TinyModelConfig(**SIZES)), seed=0)
    flops = TrainingFlops.of(model)
    one = flops.batch_flops([100], 0)
    # two samples of 50 cost the matmuls of 100 tokens but less attention than one of 100
    assert flops.batch_flops([50, 50], 0) < one
    assert flops.batch_flops([50, 50], 0) == pytest.approx(one - flops.lm_per_pair * (5050 - 2 * 1275))
    assert flops.batch_flops([100], 2) - one == pytest.approx(2 * flops.per_image)
