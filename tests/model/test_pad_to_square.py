"""`model.pad_to_square` on the llava arch: LLaVA-1.5's pad to a square with the mean colour, beside
CLIP's centre crop, through stock transformers classes."""

import numpy as np
from PIL import Image

from sicog.model.build import tiny_image_processor


def _column(processor, image):
    return processor(images=[image], return_tensors="np")["pixel_values"][0, 0, :, 32]


def test_pad_to_square_pads_with_the_mean_colour_where_the_crop_cuts():
    wide = Image.new("RGB", (64, 16), (255, 255, 255))
    crop, pad = tiny_image_processor(64), tiny_image_processor(64, pad_to_square=True)
    white = (1.0 - crop.image_mean[0]) / crop.image_std[0]
    assert np.allclose(_column(crop, wide), white, atol=1e-5)  # the centre crop keeps only the white middle
    column = _column(pad, wide)
    grey = (int(pad.image_mean[0] * 255) / 255 - pad.image_mean[0]) / pad.image_std[0]
    assert np.allclose(column[:20], grey, atol=1e-3) and np.allclose(column[-20:], grey, atol=1e-3)
    assert np.allclose(column[28:36], white, atol=1e-3)


def test_a_padding_processor_reloads_with_stock_auto_classes(tmp_path):
    from transformers import AutoImageProcessor

    pad = tiny_image_processor(64, pad_to_square=True)
    pad.save_pretrained(tmp_path)
    again = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(again).__name__.startswith("LlavaImageProcessor") and again.do_pad
    tall = Image.new("RGB", (10, 50), (200, 10, 10))
    assert np.array_equal(_column(pad, tall), _column(again, tall))


def test_the_tiny_llava_build_takes_the_setting(tmp_path):
    from sicog.config import ModelConfig, TinyModelConfig
    from sicog.model.build import build_model

    small = TinyModelConfig(hidden_size=32, num_layers=1, intermediate_size=64, vocab_size=300)
    _, processor = build_model(ModelConfig(preset="tiny", tiny=small, pad_to_square=True), seed=0)
    assert processor.image_processor.do_pad
    _, processor = build_model(ModelConfig(preset="tiny", tiny=small), seed=0)
    assert not getattr(processor.image_processor, "do_pad", False)
