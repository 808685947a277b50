"""Images that take a variable number of slices and tokens (`arch: uhd`) in the training data path.

A LLaVA image is one fixed-size tensor and a fixed number of `<image>` tokens; a sliced image is
1 to max_slices + 1 tensors of different sizes and a token layout that depends on its size. This
module is the one place the dataset, collator and pre-flight ask about that:
- `slices_images(processor)`: does this processor slice (the uhd processor's `layout_text`)?
- `image_inputs(processor, image)`: the image's tensors and the text that replaces its `<image>`
  (training-time preprocessing: no inference resize);
- `layout_for_size(processor, width, height)`: that text from the size alone (length estimates);
- `collate_slices(examples)`: one batch's slices zero-padded into one tensor, in batch order;
- `tokens_per_image(processor, image_grids)`: the `<image>` count each image of a batch must have;
- `max_pixels_of(processor)`: the pixel cap of sliced images (`images.max_pixels_in_folder`: of a
  checkpoint folder, before anything loads);
- `training_resize_target(processor, size, image_name, rules, seed, key)`: the authors' training-time
  resizes (`TrainingResize`: the TextVQA long-side rule, else the seeded six-slice augmentation).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import torch


def slices_images(processor: Any) -> bool:
    return callable(getattr(processor, "layout_text", None))


def image_token_of(processor: Any) -> str:
    return processor.image_token


def image_inputs(processor: Any, image) -> tuple[dict, str]:
    """({"pixel_values": (n, 3, H, W), "slice_sizes": (n, 2), "image_grids": (1, 2)}, layout text)."""
    out = processor.image_processor([image], return_tensors="pt", training=True)
    tensors = {k: out[k] for k in ("pixel_values", "slice_sizes", "image_grids")}
    return tensors, processor.layout_text(out["image_grids"][0].tolist(), processor.image_processor.query_side)


def layout_for_size(processor: Any, width: int, height: int) -> str:
    """The layout text of a `width` x `height` image (as `image_inputs` would give it)."""
    ip = processor.image_processor
    plan = ip.plan(*ip.sliced_size(width, height, training=True))
    return processor.layout_text(plan.grid or (0, 0), ip.query_side)


def collate_slices(examples: list[dict]) -> dict:
    """The slices of the examples that have an image, in batch order, zero-padded to one
    (N, 3, H_max, W_max) tensor, with their true sizes and each image's grid."""
    with_image = [e for e in examples if e.get("pixel_values") is not None]
    if not with_image:
        return {}
    height = max(int(e["pixel_values"].shape[-2]) for e in with_image)
    width = max(int(e["pixel_values"].shape[-1]) for e in with_image)
    padded = [torch.nn.functional.pad(e["pixel_values"], (0, width - e["pixel_values"].shape[-1],
                                                         0, height - e["pixel_values"].shape[-2]))
              for e in with_image]
    return {"pixel_values": torch.cat(padded), "slice_sizes": torch.cat([e["slice_sizes"] for e in with_image]),
            "image_grids": torch.cat([e["image_grids"] for e in with_image])}


def tokens_per_image(processor: Any, image_grids) -> list[int]:
    """How many `<image>` tokens each image of a batch takes (its layout's feature count)."""
    token = processor.image_token
    side = processor.image_processor.query_side
    return [processor.layout_text(g, side).count(token) for g in image_grids.tolist()]


def max_pixels_of(processor: Any) -> int | None:
    """The image processor's pixel cap (`model.uhd.max_pixels`), None where it has none: images
    above it are refused from their header, before decoding (`sicog.data.images.load_image`)."""
    return getattr(getattr(processor, "image_processor", None), "max_pixels", None)


#: the grid the authors' augmentation resizes to (their `resize_as_grid(image, slice_num=6)`)
GRID_RESIZE_SLICES = 6


@dataclass(frozen=True)
class TrainingResize:
    """The authors' training-time resizes of a sliced image, from `model.uhd` (docs/uhd.md)."""

    grid_resize_prob: float = 0.0  # share of images resized to the area of six slices
    long_side_patterns: tuple[str, ...] = ()  # an image whose name contains one of these ...
    long_side: int = 0  # ... gets this longer side first (0: never)

    @classmethod
    def of(cls, uhd: Any) -> TrainingResize:
        return cls(uhd.grid_resize_prob, tuple(uhd.long_side_resize_patterns), uhd.long_side_resize)


def long_side_target(size: tuple[int, int], image_name: str, rules: TrainingResize) -> tuple[int, int] | None:
    """The size an image named `image_name` (the record's `image` value) is resized to when its name
    matches a long-side pattern: the longer side to `rules.long_side`, the other truncated (their
    TextVQA rule, small images grow); None otherwise."""
    if not rules.long_side or not any(p in image_name for p in rules.long_side_patterns):
        return None
    width, height = size
    side = rules.long_side
    if width > height:
        return side, max(int(side / width * height), 1)
    return max(int(side / height * width), 1), side


def grid_resize_target(processor: Any, size: tuple[int, int], prob: float, seed: int, key: str) -> tuple[int, int] | None:
    """The size a training image is resized to before slicing, or None to slice it as it is.

    The authors' data loader resizes an image, with probability 0.1, to the area of six slices
    (aspect kept, both sides truncated) when its own plan is not six slices, so that the
    model sees the six-slice layout often. The draw is a hash of (seed, key) - `key` names the
    record (file:line) - so every data-loader worker and a resumed run make the same choice
    without sharing a random state. With `never_split` (stage 1) too, as theirs: the plan is the
    one the image would have with slices, and the overview is then taken from the resized image.
    With `pad_to_square` the padded square gets the six-slice area.
    """
    ip = processor.image_processor
    if prob <= 0:
        return None
    draw = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2.0 ** 64
    if draw >= prob:
        return None
    planned = ip.sliced_size(*size, training=True)
    if ip.plan(*planned, never_split=False).num_slices == GRID_RESIZE_SLICES:
        return None
    r = math.sqrt(GRID_RESIZE_SLICES * ip.scale_resolution ** 2 / (planned[0] * planned[1]))
    return max(int(size[0] * r), 1), max(int(size[1] * r), 1)


def training_resize_target(processor: Any, size: tuple[int, int], image_name: str, rules: TrainingResize | None,
                           seed: int, key: str) -> tuple[int, int] | None:
    """The one decision on resizing a training image before slicing: a name matching the long-side
    patterns is resized that way (and never drawn for the six-slice resize, as theirs); any other
    image may be drawn for the six-slice resize; None slices the image at its own size."""
    if rules is None:
        return None
    return long_side_target(size, image_name, rules) or grid_resize_target(processor, size, rules.grid_resize_prob,
                                                                           seed, key)
