"""Adaptive slicing of a high-resolution image (LLaVA-UHD v1, MiniCPM-style) and its token layout.

Pure Python: no torch, no PIL, no sicog imports, because this file also ships inside every `uhd`
checkpoint as remote code (the image processor imports it) and must run where sicog is absent.

The rules (docs/uhd.md has the derivation and the worked numbers):
- `ratio = w*h / R^2` (R = scale resolution); `n = min(ceil(ratio), max_slices)`.
- n <= 1: no slicing; the image alone is resized (up or down) to the area of an R x R square,
  aspect kept, both sides floored to the patch grid.
- otherwise the slice count is one of n-1, n, n+1 (never 1, never above the maximum); among the
  factorisations cols x rows of those counts the grid whose log aspect is nearest the image's wins
  (first found on ties, counts ascending, cols ascending). The image is cut into cols x rows
  equal cells; every cell is resized to the R^2 area at its own aspect and floored to the patch
  grid. The overview ("source") is the whole image shrunk to the R^2 area (never enlarged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SlicePlan:
    """Where an image goes: overview size, slice grid and slice sizes, all (width, height) in px."""

    source_size: tuple[int, int]
    grid: tuple[int, int] | None = None  # (cols, rows); None when the image is not sliced
    slice_sizes: list[tuple[int, int]] = field(default_factory=list)  # row-major, one per slice

    @property
    def num_slices(self) -> int:
        return len(self.slice_sizes)


def _floor_to(length: float, unit: int) -> int:
    """`length` floored to a multiple of `unit`, never below one unit."""
    return max(math.floor(length / unit) * unit, unit)


def _area_fit(width: float, height: float, resolution: int, patch_size: int, upscale: bool) -> tuple[int, int]:
    """Size with the area of a `resolution`^2 square and the same aspect, floored to the patch grid.

    Only images larger than the square are resized unless `upscale`; the height is computed
    first and truncated, the width derived from it (the order changes results by a pixel).
    """
    if upscale or width * height > resolution * resolution:
        aspect = width / height
        height = int(resolution / math.sqrt(aspect))
        width = int(height * aspect)
    return _floor_to(width, patch_size), _floor_to(height, patch_size)


def _best_grid(width: int, height: int, count: int, max_slices: int) -> tuple[int, int]:
    log_aspect = math.log(width / height)
    best, best_error = (1, 1), float("inf")
    for n in (count - 1, count, count + 1):
        if n == 1 or n > max_slices:
            continue
        for cols in range(1, n + 1):
            if n % cols:
                continue
            error = abs(log_aspect - math.log(cols / (n // cols)))
            if error < best_error:
                best, best_error = (cols, n // cols), error
    return best


def plan_slices(width: int, height: int, max_slices: int = 7, scale_resolution: int = 336,
                patch_size: int = 14, never_split: bool = False) -> SlicePlan:
    """The slicing of a `width` x `height` image (see the module docstring for the rules).

    `never_split` gives the overview alone: the authors' `single` mode of their alignment stage,
    which drops the slices of a normal plan (the same overview size).
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max_slices < 1 or scale_resolution < 1 or patch_size < 1:
        raise ValueError("max_slices, scale_resolution and patch_size must be positive")
    ratio = width * height / (scale_resolution * scale_resolution)
    count = min(math.ceil(ratio), max_slices)
    if count <= 1 or never_split:
        # (for an image above the R^2 area, resizing with or without upscale gives the same size,
        # so this overview equals the sliced case's overview)
        return SlicePlan(_area_fit(width, height, scale_resolution, patch_size, upscale=True))
    source = _area_fit(width, height, scale_resolution, patch_size, upscale=False)
    cols, rows = _best_grid(width, height, count, max_slices)
    cell_w = _floor_to(width, cols) / cols
    cell_h = _floor_to(height, rows) / rows
    slice_size = _area_fit(cell_w, cell_h, scale_resolution, patch_size, upscale=True)
    return SlicePlan(source, (cols, rows), [slice_size] * (cols * rows))


def layout_tokens(plan: SlicePlan, side: int) -> list[str]:
    """The token layout of one image as kinds: "image" (one visual feature), "row" (row separator),
    "slice" (slice separator). Each slice and the overview give `side` x `side` features.

    Slices are stitched into one (rows*side) x (cols*side) feature map read row by row, each
    feature row closed by a row separator; then one separator, then the overview's features. The
    separator before the overview is the one that follows the first slice: a slice separator
    when a grid row holds several slices, the row separator when it holds one.
    """
    overview = ["image"] * (side * side)
    if plan.grid is None:
        return overview
    cols, rows = plan.grid
    feature_row = ["image"] * (cols * side) + ["row"]
    middle = "slice" if cols > 1 else "row"
    return feature_row * (rows * side) + [middle] + overview


def count_tokens(plan: SlicePlan, side: int) -> int:
    """len(layout_tokens(plan, side)) without building the list."""
    if plan.grid is None:
        return side * side
    cols, rows = plan.grid
    return rows * side * (cols * side + 1) + 1 + side * side
