"""Fixtures of the model tests: one tiny checkpoint per session, a deterministic test image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """A complete random-init tiny checkpoint folder (built once per test session)."""
    from sicog.model.checkpoint import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)


def make_image(size=(80, 64), seed=0) -> Image.Image:
    """A deterministic noise image (not square, so resize + crop are exercised)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


USER_WITH_IMAGE = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many red circles are there?"}]}
]
