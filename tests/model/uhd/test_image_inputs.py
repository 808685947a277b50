"""Awkward images through the uhd image processor: extreme strips, tiny, odd modes, too large."""

import numpy as np
import pytest
from PIL import Image

from sicog.model.uhd.image_processing_uhd import SicogUhdImageProcessor, to_rgb


@pytest.mark.parametrize("size", [(1, 4000), (4000, 1), (5, 5), (13, 2)])
def test_extreme_and_sub_patch_sizes_give_whole_patches(size):
    processor = SicogUhdImageProcessor(scale_resolution=64, patch_size=16, query_side=4, inference_longest_side=195)
    for training in (False, True):
        out = processor([Image.new("RGB", size, (10, 20, 30))], return_tensors="np", training=training)
        for h, w in out["slice_sizes"]:
            assert h >= 16 and w >= 16 and h % 16 == 0 and w % 16 == 0
        assert np.isfinite(out["pixel_values"]).all()


def test_modes_become_8_bit_rgb():
    grey16 = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert to_rgb(grey16).getpixel((0, 0)) == (255, 255, 255)  # scaled, not clipped to white by accident
    half16 = Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16))
    assert to_rgb(half16).getpixel((0, 0)) == (128, 128, 128)
    rgba = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red: white after compositing
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(Image.new("CMYK", (8, 8), (0, 255, 255, 0))).getpixel((0, 0)) == (255, 0, 0)
    assert to_rgb(Image.new("L", (8, 8), 77)).getpixel((0, 0)) == (77, 77, 77)
    assert to_rgb(Image.new("P", (8, 8))).mode == "RGB"


def test_an_image_above_the_pixel_limit_is_refused_by_size():
    processor = SicogUhdImageProcessor(max_pixels=1000)
    with pytest.raises(ValueError, match=r"image of 50x30 = 1500 pixels is above the limit of 1000"):
        processor([Image.new("RGB", (50, 30))])


def test_pad_to_square_pads_with_the_mean_colour_before_slicing():
    processor = SicogUhdImageProcessor(scale_resolution=64, patch_size=16, query_side=4, pad_to_square=True,
                                       inference_longest_side=None, image_mean=(0.5, 0.5, 0.5), image_std=(0.5, 0.5, 0.5))
    out = processor([Image.new("RGB", (64, 16), (255, 255, 255))], return_tensors="np")
    assert out["image_grids"].tolist() == [[0, 0]] and tuple(out["slice_sizes"][0]) == (64, 64)
    column = out["pixel_values"][0, 0, :, 32]
    assert abs(column[0]) < 0.01 and abs(column[32] - 1.0) < 1e-6  # mean grey above, white image in the middle
