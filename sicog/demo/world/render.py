"""Rendering a scene to pixels (Pillow + NumPy), deterministically.

The picture is drawn at 4x, downsampled with a box filter (anti-aliasing), then given a small
per-object colour jitter and per-pixel gaussian noise seeded from `Scene.seed`, so the same
scene always gives the same bytes. Jitter and noise are small enough that every colour stays
unambiguous (PALETTE hues are far apart). PNGs are written with fixed settings and no metadata
(no timestamps), so files are byte-identical across runs.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from sicog.demo.world.scenes import (
    _SUPERSAMPLE,
    BACKGROUNDS,
    BORDER_RGB,
    PALETTE,
    SPECK_RGB,
    Scene,
    draw_shape,
)

PNG_COMPRESS_LEVEL = 6


def render_scene(scene: Scene, colour_jitter: int = 12, noise_sd: float = 5.0) -> Image.Image:
    """The scene as an RGB image of `scene.image_size` pixels a side."""
    rng = np.random.default_rng(scene.seed)
    size = scene.image_size
    s = size * _SUPERSAMPLE
    img = Image.new("RGB", (s, s), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    # clutter first: it lies on the background, under every shape
    speck_r = max(0.5, size / 64) * _SUPERSAMPLE * 0.6
    for x, y in scene.specks:
        X, Y = x * _SUPERSAMPLE, y * _SUPERSAMPLE
        draw.ellipse([X - speck_r, Y - speck_r, X + speck_r, Y + speck_r], fill=SPECK_RGB)
    if scene.border:
        w = max(1, round(size / 64)) * _SUPERSAMPLE
        draw.rectangle([0, 0, s - 1, s - 1], outline=BORDER_RGB, width=w)
    for obj in sorted(scene.objects, key=lambda o: o.z):
        base = np.array(PALETTE[obj.colour], dtype=np.int64)
        rgb = np.clip(base + rng.integers(-colour_jitter, colour_jitter + 1, size=3), 0, 255)
        draw_shape(draw, obj.shape, obj.center[0] * _SUPERSAMPLE, obj.center[1] * _SUPERSAMPLE,
                   obj.radius * _SUPERSAMPLE, tuple(int(v) for v in rgb))
    small = img.resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(small, dtype=np.float64)
    if noise_sd > 0:
        arr = arr + rng.normal(0.0, noise_sd, size=arr.shape)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def png_bytes(image: Image.Image) -> bytes:
    """PNG bytes with fixed settings and no metadata chunks (deterministic)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()
