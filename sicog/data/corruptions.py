"""Image corruptions for preference data (docs/method.md, "Corruptions"): candidates sampled
on a corrupted image make plausible-but-wrong "rejected" answers.

Every corruption is a pure function `(PIL image, numpy Generator) -> PIL image` (RGB), so a
seed fixes the result. All work is vectorised NumPy / Pillow; nothing loops over pixels.

- gaussian_blur: Gaussian blur with sigma drawn from [3, 5].
- color_jitter: brightness, contrast, saturation factors each in [0.2, 1.8] (strength 0.8),
  hue shifted by up to +-0.2 of the colour circle (in HSV, in random order like torchvision).
- mirror_rotate: horizontal mirror, then rotation by 90 or 270 degrees.
- mask: a random half-plane (a line of random direction) covering 30 % +- 5 % of the pixels is
  filled with the mean colour of that region.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

BLUR_SIGMA = (3.0, 5.0)
JITTER_STRENGTH = 0.8  # brightness / contrast / saturation factor in [1 - s, 1 + s]
HUE_SHIFT = 0.2  # fraction of the colour circle
MASK_FRACTION = (0.25, 0.35)


def _rgb(img: Image.Image) -> Image.Image:
    return img if img.mode == "RGB" else img.convert("RGB")


def gaussian_blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur with sigma uniform in [3, 5] pixels."""
    sigma = float(rng.uniform(*BLUR_SIGMA))
    # Pillow's GaussianBlur radius is the standard deviation.
    return _rgb(img).filter(ImageFilter.GaussianBlur(radius=sigma))


def _rgb_to_hsv(a: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1], shape (..., 3) -> HSV in [0, 1]."""
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    maxc = a.max(axis=-1)
    minc = a.min(axis=-1)
    delta = maxc - minc
    v = maxc
    s = np.where(maxc > 0, delta / np.where(maxc > 0, maxc, 1.0), 0.0)
    safe = np.where(delta > 0, delta, 1.0)
    rc = (maxc - r) / safe
    gc = (maxc - g) / safe
    bc = (maxc - b) / safe
    h = np.where(maxc == r, bc - gc, np.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1)


def _hsv_to_rgb(a: np.ndarray) -> np.ndarray:
    """HSV in [0, 1], shape (..., 3) -> float RGB in [0, 1]."""
    h, s, v = a[..., 0], a[..., 1], a[..., 2]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    p = v * (1.0 - s)
    q = v * (1.0 - s * f)
    t = v * (1.0 - s * (1.0 - f))
    i = i.astype(np.int64) % 6
    # Sector table: for sector k, which of (v, q, p, t) is R, G, B.
    choices = np.stack([v, q, p, t], axis=-1)
    table = np.array([[0, 3, 2], [1, 0, 2], [2, 0, 3], [2, 1, 0], [3, 2, 0], [0, 2, 1]])
    idx = table[i]  # (..., 3)
    return np.take_along_axis(choices, idx, axis=-1)


def shift_hue(img: Image.Image, shift: float) -> Image.Image:
    """Rotate every pixel's hue by `shift` (fraction of the colour circle), in HSV."""
    a = np.asarray(_rgb(img), dtype=np.float32) * np.float32(1.0 / 255.0)
    hsv = _rgb_to_hsv(a)
    hsv[..., 0] = (hsv[..., 0] + shift) % 1.0
    out = _hsv_to_rgb(hsv)
    return Image.fromarray(np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8), "RGB")


def color_jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Random brightness, contrast, saturation (factors in [0.2, 1.8]) and hue (+-0.2), random order."""
    lo, hi = 1.0 - JITTER_STRENGTH, 1.0 + JITTER_STRENGTH
    b, c, s = (float(x) for x in rng.uniform(lo, hi, size=3))
    h = float(rng.uniform(-HUE_SHIFT, HUE_SHIFT))
    ops: list[Callable[[Image.Image], Image.Image]] = [
        lambda im: ImageEnhance.Brightness(im).enhance(b),
        lambda im: ImageEnhance.Contrast(im).enhance(c),
        lambda im: ImageEnhance.Color(im).enhance(s),
        lambda im: shift_hue(im, h),
    ]
    out = _rgb(img)
    for k in rng.permutation(len(ops)):
        out = ops[int(k)](out)
    return out


def mirror_rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Horizontal mirror, then rotation (counter-clockwise) by 90 or 270 degrees."""
    angle = 90 if rng.random() < 0.5 else 270
    mirrored = _rgb(img).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return mirrored.transpose(
        Image.Transpose.ROTATE_90 if angle == 90 else Image.Transpose.ROTATE_270
    )


def half_plane_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (H, W) mask of a random-direction half-plane covering 25-35 % of the pixels.

    The line's direction is uniform; its offset is the k-th largest projection of the pixel
    centres on the line's normal, k = target fraction x pixels, so the fraction is exact.
    """
    theta = rng.uniform(0.0, 2.0 * np.pi)
    target = rng.uniform(*MASK_FRACTION)
    ys, xs = np.ogrid[0:height, 0:width]
    proj = (xs - (width - 1) / 2.0) * np.cos(theta) + (ys - (height - 1) / 2.0) * np.sin(theta)
    # A tiny tilt breaks exact ties between pixels on one line (axis-aligned directions).
    proj = proj + 1e-9 * (xs * 0.618 + ys * 0.382)
    # The k pixels with the largest projections form the half-plane {p : proj(p) >= t}.
    flat = proj.ravel()
    k = min(max(int(round(target * flat.size)), 1), flat.size)
    t = np.partition(flat, flat.size - k)[flat.size - k]
    mask = proj >= t
    return mask


def mask(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Fill a random half-plane covering 30 % +- 5 % of the image with that region's mean colour."""
    a = np.array(_rgb(img))
    m = half_plane_mask(a.shape[0], a.shape[1], rng)
    if m.any():
        a[m] = np.rint(a[m].mean(axis=0)).astype(np.uint8)
    return Image.fromarray(a, "RGB")


CORRUPTIONS: dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]] = {
    "gaussian_blur": gaussian_blur,
    "color_jitter": color_jitter,
    "mirror_rotate": mirror_rotate,
    "mask": mask,
}

#: short names used by the paper's scripts (AUGMENT_METHODS) -> our names
ALIASES = {"blur": "gaussian_blur", "jitter": "color_jitter", "colour_jitter": "color_jitter",
           "color": "color_jitter", "rotate": "mirror_rotate", "mirror": "mirror_rotate",
           "flip": "mirror_rotate"}


def canonical_name(name: str) -> str:
    """The registered name of a corruption (aliases accepted); ValueError lists valid names."""
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    return key


def corruption_seed(seed: int, index: int, name: str) -> np.random.Generator:
    """The Generator for corrupting input `index` with `name` under the run seed `seed`."""
    salt = list(CORRUPTIONS).index(canonical_name(name))
    return np.random.default_rng([seed, index, salt])


def apply_corruption(img: Image.Image, name: str, rng: np.random.Generator) -> Image.Image:
    """Apply the named corruption (aliases accepted) with the given Generator."""
    return CORRUPTIONS[canonical_name(name)](img, rng)
