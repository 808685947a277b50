"""Helpers of the model tests: a deterministic test image, a chat message with an image.

The tiny checkpoint (`tiny_ckpt`, `tiny`) comes from tests/conftest.py."""

from __future__ import annotations

import numpy as np
from PIL import Image


def make_image(size=(80, 64), seed=0) -> Image.Image:
    """A deterministic noise image (not square, so resize + crop are exercised)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


USER_WITH_IMAGE = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many red circles are there?"}]}
]
