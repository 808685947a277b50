"""What the vLLM plugin needs to know about a `uhd` checkpoint's images, without vLLM.

Kept apart from `uhd_processing` (which vLLM imports) so that the CPU test suite checks these
against the hf processor where no vLLM is installed:
- the image processor's settings saved in the checkpoint folder, which build the processor the
  plugin slices with;
- the token ids that replace one `<image>` for a slice grid (the processor's `layout_text`,
  as ids);
- the image size whose layout is longest, which vLLM needs to size its buffers up front.
"""

from __future__ import annotations

import json
from pathlib import Path

from sicog.model.uhd.slicing_uhd import SlicePlan, layout_tokens

#: keys of a saved image processor's settings that name classes, not settings
_CLASS_KEYS = ("auto_map", "image_processor_type", "processor_class")


def image_processor_settings(folder) -> dict:
    """The image processor's settings saved in a checkpoint folder (processor_config.json's
    `image_processor`, or a separate preprocessor_config.json)."""
    folder = Path(folder)
    try:
        saved = json.loads((folder / "processor_config.json").read_text(encoding="utf-8"))["image_processor"]
    except (OSError, KeyError, TypeError, ValueError):
        try:
            saved = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{folder}: no image processor settings (processor_config.json or "
                             f"preprocessor_config.json): {e}") from e
    return {k: v for k, v in saved.items() if k not in _CLASS_KEYS}


def layout_ids(grid: tuple[int, int], side: int, image_id: int, row_id: int, slice_id: int) -> list[int]:
    """The token ids that replace one `<image>`: `layout_tokens` of a (cols, rows) grid,
    (0, 0) for an unsliced image."""
    cols, rows = grid
    plan = SlicePlan((0, 0), (cols, rows) if cols * rows else None)
    kinds = {"image": image_id, "row": row_id, "slice": slice_id}
    return [kinds[k] for k in layout_tokens(plan, side)]


def largest_image(processor) -> tuple[int, int]:
    """(width, height) of an image with the longest layout under the image processor `processor`
    (a SicogUhdImageProcessor); the smallest such image on ties. With the answering-time resize
    (longer side to L) an image is fixed by its aspect, so every L x h and h x L is tried;
    without it, sizes in quarter steps of the slice resolution up to the largest slicing."""
    longest = processor.inference_longest_side
    if longest:
        sizes = [s for other in range(1, longest + 1) for s in ((longest, other), (other, longest))]
    else:
        steps = [max(processor.scale_resolution * k // 4, 1) for k in range(1, 4 * processor.max_slices + 1)]
        sizes = [(w, h) for w in steps for h in steps]
    return max(sizes, key=lambda s: (processor.num_tokens(*s), -s[0] * s[1]))
