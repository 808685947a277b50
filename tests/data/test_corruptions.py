"""Each corruption changes the image as docs/method.md specifies and is deterministic per seed."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from PIL import Image

from sicog.data import corruptions as C


def _photo(h: int = 96, w: int = 128, seed: int = 0) -> Image.Image:
    """A textured colour image: gradients plus noise (has high-frequency energy and hue variety)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w]
    a = np.stack([xs / w * 255, ys / h * 255, (xs + ys) % 64 * 4], axis=-1)
    a = a + rng.normal(0, 30, size=a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


@pytest.mark.parametrize("name", list(C.CORRUPTIONS))
def test_deterministic_per_seed_and_seed_matters(name):
    img = _photo()
    a = C.apply_corruption(img, name, np.random.default_rng(7))
    b = C.apply_corruption(img, name, np.random.default_rng(7))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.mode == "RGB"
    assert not np.array_equal(np.asarray(a), np.asarray(img))
    if name != "mirror_rotate":  # only two outcomes there; other seeds must differ
        outs = {np.asarray(C.apply_corruption(img, name, np.random.default_rng(s))).tobytes()
                for s in range(4)}
        assert len(outs) > 1


def _high_freq_energy(a: np.ndarray) -> float:
    return float((np.diff(a, axis=0) ** 2).mean() + (np.diff(a, axis=1) ** 2).mean())


def test_blur_reduces_high_frequency_energy_with_sigma_3_to_5():
    img = _photo()
    out = C.gaussian_blur(img, np.random.default_rng(0))
    assert out.size == img.size
    assert _high_freq_energy(_arr(out)) < 0.1 * _high_freq_energy(_arr(img))
    # sigma >= 3 blurs a single bright pixel over many pixels, sigma <= 5 keeps it local
    dot = np.zeros((41, 41, 3), np.uint8)
    dot[20, 20] = 255
    for s in range(5):
        spread = _arr(C.gaussian_blur(Image.fromarray(dot), np.random.default_rng(s)))[..., 0]
        profile = spread[20] / spread[20].sum()
        sigma = np.sqrt((profile * (np.arange(41) - 20) ** 2).sum())
        assert 2.5 <= sigma <= 5.5, sigma


def test_mirror_rotate_equals_transpose_expectation():
    img = _photo(30, 50)
    a = np.asarray(img)
    seen = set()
    for s in range(12):
        out = np.asarray(C.mirror_rotate(img, np.random.default_rng(s)))
        mirrored = a[:, ::-1]
        rot90 = np.rot90(mirrored, k=1)  # counter-clockwise 90
        rot270 = np.rot90(mirrored, k=3)
        assert out.shape == (50, 30, 3)
        if np.array_equal(out, rot90):
            seen.add(90)
        elif np.array_equal(out, rot270):
            seen.add(270)
        else:
            raise AssertionError("mirror_rotate is neither mirror+rot90 nor mirror+rot270")
    assert seen == {90, 270}


def test_mask_covers_a_half_plane_of_30_percent_with_its_mean():
    img = _photo(336, 336)
    a = _arr(img)
    for s in range(20):
        rng = np.random.default_rng(s)
        m = C.half_plane_mask(336, 336, np.random.default_rng(s))
        out = _arr(C.mask(img, rng))
        assert 0.25 <= m.mean() <= 0.35
        # the masked region is one constant colour = the region's original mean
        region = out[m]
        assert np.all(region == region[0])
        assert np.allclose(region[0], a[m].mean(axis=0), atol=0.5)
        # outside the region nothing changed
        assert np.array_equal(out[~m], a[~m])
        assert _is_half_plane(m)


def _monotone_runs(m: np.ndarray) -> set[str]:
    """For each row: 'prefix' / 'suffix' when its True cells are a run at one end (else 'other')."""
    kinds = set()
    for row in m:
        k = int(row.sum())
        if k in (0, row.size):
            continue
        if row[:k].all():
            kinds.add("prefix")
        elif row[-k:].all():
            kinds.add("suffix")
        else:
            kinds.add("other")
    return kinds


def _is_half_plane(m: np.ndarray) -> bool:
    """A half-plane meets every row and every column in a run at the same end."""
    return all(len(k) <= 1 and "other" not in k for k in (_monotone_runs(m), _monotone_runs(m.T)))


def test_mask_directions_vary_and_tiny_images_work():
    masks = [C.half_plane_mask(64, 64, np.random.default_rng(s)) for s in range(8)]
    assert len({m.tobytes() for m in masks}) == 8
    assert all(_is_half_plane(m) for m in masks)
    # a disc is not a half-plane (the checker can fail)
    ys, xs = np.mgrid[0:20, 0:20]
    assert not _is_half_plane((ys - 10) ** 2 + (xs - 10) ** 2 < 30)
    for s in range(8):
        m = C.half_plane_mask(5, 7, np.random.default_rng(s))
        assert 0.2 <= m.mean() <= 0.4  # 35 pixels: the nearest achievable fraction


def test_color_jitter_changes_statistics_within_bounds():
    img = _photo()
    a = _arr(img)
    stats = []
    for s in range(6):
        out = _arr(C.color_jitter(img, np.random.default_rng(s)))
        assert out.shape == a.shape
        stats.append((out.mean(), out.std()))
        assert abs(out.mean() - a.mean()) > 0.5 or abs(out.std() - a.std()) > 0.5
    assert len({round(m, 3) for m, _ in stats}) > 1


def test_hue_shift_matches_colorsys():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, size=(8, 9, 3)).astype(np.uint8)
    out = np.asarray(C.shift_hue(Image.fromarray(a), 0.15))
    for y in range(8):
        for x in range(9):
            h, s, v = colorsys.rgb_to_hsv(*(a[y, x] / 255.0))
            exp = np.array(colorsys.hsv_to_rgb((h + 0.15) % 1.0, s, v)) * 255
            assert np.all(np.abs(out[y, x] - exp) <= 1.0)
    # a shift by a whole turn is the identity (up to rounding)
    same = np.asarray(C.shift_hue(Image.fromarray(a), 1.0)).astype(int)
    assert np.abs(same - a).max() <= 1


def test_names_and_aliases():
    assert C.canonical_name("blur") == "gaussian_blur"
    assert C.canonical_name("Color-Jitter") == "color_jitter"
    with pytest.raises(ValueError, match="unknown corruption"):
        C.canonical_name("sharpen")
    r1 = C.corruption_seed(0, 5, "mask").random()
    assert r1 == C.corruption_seed(0, 5, "mask").random()
    assert r1 != C.corruption_seed(0, 6, "mask").random()
    assert r1 != C.corruption_seed(0, 5, "blur").random()
