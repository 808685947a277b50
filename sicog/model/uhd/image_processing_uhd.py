"""Image processor of the LLaVA-UHD model: slice, resize (bicubic), rescale, normalise. Remote code.

Per image the output holds its slices row-major, then its overview; all of a batch's slices are
zero-padded to one (N, 3, H_max, W_max) tensor, with `slice_sizes` (N, 2) giving each one's true
(height, width) in pixels and `image_grids` (images, 2) each image's (cols, rows), (0, 0) when it
is not sliced. `num_image_tokens` is each image's length in the token layout.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from transformers.image_processing_base import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from .slicing_uhd import count_tokens, plan_slices

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB: 16-bit / 32-bit grey scaled to 0-255 by its range (PIL's own
    conversion clips them), transparency composited over white, CMYK / palette / grey converted.
    (sicog's own loaders, sicog/data/images.py, convert the same way; a test keeps the two equal.)"""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or (arr.size and arr.max() > 255) else 255.0
        image = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


class SicogUhdImageProcessor(BaseImageProcessor):
    """Adaptive slicing + CLIP-style normalisation; `never_split` keeps the overview alone.

    `max_pixels` refuses an image above that many pixels with an error naming its size, rather
    than letting a huge decode or resize exhaust memory; `pad_to_square` first pads the image to a
    square with the mean colour (LLaVA-1.5's preprocessing) before slicing. `inference_longest_side`
    (the authors: 1024 px at 336 px slices) resizes every image to that longer side before slicing
    when answering; training data is sliced at its own size (`training=True`), as the authors do.
    """

    model_input_names = ["pixel_values", "slice_sizes", "image_grids"]

    def __init__(self, max_slices: int = 7, scale_resolution: int = 336, patch_size: int = 14,
                 query_side: int = 12, image_mean=CLIP_MEAN, image_std=CLIP_STD, never_split: bool = False,
                 pad_to_square: bool = False, max_pixels: int = 50_000_000,
                 inference_longest_side: int | None = 1024, **kwargs):
        super().__init__(**kwargs)
        self.max_slices, self.scale_resolution, self.patch_size = max_slices, scale_resolution, patch_size
        self.query_side = query_side
        self.image_mean, self.image_std = list(image_mean), list(image_std)
        self.never_split, self.pad_to_square, self.max_pixels = never_split, pad_to_square, max_pixels
        self.inference_longest_side = inference_longest_side

    def plan(self, width: int, height: int, never_split: bool | None = None):
        """The slice plan of a `width` x `height` image (`never_split=False`: the plan it would have
        with slices even when this processor keeps the overview alone)."""
        return plan_slices(width, height, self.max_slices, self.scale_resolution, self.patch_size,
                           never_split=self.never_split if never_split is None else never_split)

    def sliced_size(self, width: int, height: int, training: bool = False) -> tuple[int, int]:
        """The size the plan is made for: after padding to a square and the inference resize."""
        if self.pad_to_square:
            width = height = max(width, height)
        side = self.inference_longest_side
        if side and not training:  # longer side to `side`, the other truncated (the authors' rule)
            width, height = (side, max(int(side / width * height), 1)) if width > height else \
                (max(int(side / height * width), 1), side)
        return width, height

    def num_tokens(self, width: int, height: int, training: bool = False) -> int:
        """Length of an image of this size in the token layout."""
        return count_tokens(self.plan(*self.sliced_size(width, height, training)), self.query_side)

    def prepare(self, image: Image.Image, training: bool = False) -> Image.Image:
        """Checked, RGB, padded / resized as configured: the image the plan is made for."""
        w, h = image.size
        if w * h > self.max_pixels:
            raise ValueError(f"image of {w}x{h} = {w * h} pixels is above the limit of {self.max_pixels} "
                             "(image processor max_pixels)")
        image = to_rgb(image)
        if self.pad_to_square and w != h:
            side = max(w, h)
            fill = tuple(int(round(255 * m)) for m in self.image_mean)
            canvas = Image.new("RGB", (side, side), fill)
            canvas.paste(image, ((side - w) // 2, (side - h) // 2))
            image = canvas
        size = self.sliced_size(w, h, training)
        return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)

    def _normalise(self, image: Image.Image) -> np.ndarray:
        arr = np.asarray(image, dtype=np.float32) / 255.0
        arr = (arr - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
        return arr.transpose(2, 0, 1)

    def slice_image(self, image: Image.Image, training: bool = False) -> tuple[list[np.ndarray], tuple[int, int], int]:
        """(arrays: slices row-major then the overview, (cols, rows) or (0, 0), token count)."""
        image = self.prepare(image, training)
        plan = self.plan(*image.size)
        arrays = []
        if plan.grid is not None:
            cols, rows = plan.grid
            sw, sh = plan.slice_sizes[0]
            refined = image.resize((sw * cols, sh * rows), Image.Resampling.BICUBIC)
            for r in range(rows):
                for c in range(cols):
                    arrays.append(self._normalise(refined.crop((c * sw, r * sh, (c + 1) * sw, (r + 1) * sh))))
        arrays.append(self._normalise(image.resize(plan.source_size, Image.Resampling.BICUBIC)))
        return arrays, plan.grid or (0, 0), count_tokens(plan, self.query_side)

    def __call__(self, images, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        return self.preprocess(images, return_tensors=return_tensors, **kwargs)

    def preprocess(self, images, return_tensors: str | None = "pt", training: bool = False, **kwargs) -> BatchFeature:
        if isinstance(images, Image.Image):
            images = [images]
        images = [im for group in images for im in (group if isinstance(group, (list, tuple)) else [group])]
        arrays, sizes, grids, counts = [], [], [], []
        for image in images:
            if not isinstance(image, Image.Image):
                image = Image.fromarray(np.asarray(image))
            parts, grid, count = self.slice_image(image, training)
            arrays += parts
            sizes += [a.shape[1:] for a in parts]
            grids.append(grid)
            counts.append(count)
        height = max((s[0] for s in sizes), default=0)
        width = max((s[1] for s in sizes), default=0)
        pixels = np.zeros((len(arrays), 3, height, width), dtype=np.float32)
        for k, a in enumerate(arrays):
            pixels[k, :, : a.shape[1], : a.shape[2]] = a
        data = {"pixel_values": pixels, "slice_sizes": np.asarray(sizes, dtype=np.int64).reshape(-1, 2),
                "image_grids": np.asarray(grids, dtype=np.int64).reshape(-1, 2),
                "num_image_tokens": np.asarray(counts, dtype=np.int64)}
        return BatchFeature(data=data, tensor_type=return_tensors)
