"""The slice encoder equals the tower's own forward on each slice, for CLIP and SigLIP towers."""

import pytest
import torch


def _model(vision_config):
    from transformers import Qwen2Config

    from sicog.model.uhd.configuration_uhd import SicogUhdConfig
    from sicog.model.uhd.modeling_uhd import SicogUhdForConditionalGeneration

    text = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=False)
    config = SicogUhdConfig(vision_config=vision_config, text_config=text, image_token_id=5, row_token_id=6,
                            slice_token_id=7, num_queries=16, resampler_head_dim=16)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    return SicogUhdForConditionalGeneration(config).eval()


def _tiny_vision(kind):
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    sizes = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                 image_size=64, patch_size=16)
    return CLIPVisionConfig(**sizes) if kind == "clip" else SiglipVisionConfig(**sizes)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_slices_of_any_size_match_the_towers_own_forward(kind):
    model = _model(_tiny_vision(kind))
    tower = model.model.vision_tower
    extra = 1 if kind == "clip" else 0
    sizes = [(64, 64), (48, 112), (128, 32)]  # native, then interpolated positions
    pixels = torch.zeros(len(sizes), 3, 128, 112)
    for k, (h, w) in enumerate(sizes):
        pixels[k, :, :h, :w] = torch.randn(3, h, w)
    with torch.no_grad():
        ours = model.model.encode_slices(pixels, torch.tensor(sizes))
        for k, (h, w) in enumerate(sizes):
            out = tower(pixel_values=pixels[k: k + 1, :, :h, :w], interpolate_pos_encoding=True,
                        output_hidden_states=True)
            ref = out.hidden_states[-2][0, extra:]  # the penultimate layer, class token dropped
            assert ours[k].shape == ref.shape == ((h // 16) * (w // 16), 32)
            assert (ours[k] - ref).abs().max() < 1e-4, (kind, h, w)


def test_a_siglip_uhd_model_runs_end_to_end():
    model = _model(_tiny_vision("siglip"))
    pixels = torch.randn(2, 3, 64, 96)
    grids = torch.tensor([[0, 0], [0, 0]])
    sizes = torch.tensor([[64, 64], [64, 96]])
    ids = torch.tensor([[1] + [5] * 16 + [2], [1] + [5] * 16 + [3]])
    with torch.no_grad():
        logits = model(input_ids=ids, pixel_values=pixels, slice_sizes=sizes, image_grids=grids).logits
    assert logits.shape == (2, 18, 64) and torch.isfinite(logits).all()
