"""vLLM's multimodal processor for `sicog_uhd` checkpoints: slicing and the `<image>` expansion.

Imported by vLLM only (through `uhd_model`). vLLM 0.32 tokenizes the chat prompt itself and asks
the model's processor for two things: the tensors of each image, and the token sequence that
replaces its `<image>`. Both come from sicog's own code, so they equal the hf backend's:

- the tensors: sicog's `SicogUhdImageProcessor`, built with the settings saved in the
  checkpoint's processor_config.json (slice size, maximum slices, the answering-time resize),
  applied to one image at a time (its slices row-major, then the overview);
- the tokens: the layout of `slicing_uhd.layout_tokens` for the image's grid, written with the
  checkpoint's ids of `<image>`, `<uhd_row>` and `<uhd_slice>` (`uhd_layout.layout_ids`). Only
  the `<image>` positions receive visual features; the separators keep their learned embeddings.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import ImageProcessorItems, ImageSize, MultiModalDataItems
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
    PromptUpdateDetails,
)

from sicog.model.uhd.image_processing_uhd import SicogUhdImageProcessor
from sicog.model.vllm_uhd.uhd_layout import image_processor_settings, largest_image, layout_ids


class UhdProcessingInfo(BaseProcessingInfo):
    """What vLLM asks about a `sicog_uhd` checkpoint before it sees a request."""

    @functools.cached_property
    def image_processor(self) -> SicogUhdImageProcessor:
        return SicogUhdImageProcessor(**image_processor_settings(self.ctx.model_config.model))

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None}

    def get_supported_mm_processor_kwargs(self) -> dict[str, set[str]]:
        return {}  # the slicing is the checkpoint's; requests cannot change it

    def token_ids(self) -> tuple[int, int, int]:
        config = self.get_hf_config()
        return config.image_token_id, config.row_token_id, config.slice_token_id

    def num_tokens(self, width: int, height: int) -> int:
        return self.image_processor.num_tokens(width, height)

    @functools.cached_property
    def largest_image(self) -> ImageSize:
        """The image size with the longest layout (uhd_layout.largest_image)."""
        width, height = largest_image(self.image_processor)
        return ImageSize(width=width, height=height)

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int]) -> Mapping[str, int]:
        size = self.largest_image
        return {"image": self.num_tokens(size.width, size.height)}


class UhdDummyInputsBuilder(BaseDummyInputsBuilder[UhdProcessingInfo]):
    """Profiling inputs: `<image>` per image, each image of the size with the longest layout."""

    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return "<image>" * mm_counts.get("image", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options):
        size = self.info.largest_image
        return {"image": self._get_dummy_images(width=size.width, height=size.height,
                                                num_images=mm_counts.get("image", 0),
                                                overrides=(mm_options or {}).get("image"))}


class UhdMultiModalProcessor(BaseMultiModalProcessor[UhdProcessingInfo]):
    """Images -> (pixel_values, slice_sizes, image_grids); `<image>` -> the image's layout."""

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        proc = self.info.image_processor
        pieces, sizes, grids = [], [], []
        for image in hf_data.get("images", []):
            if not isinstance(image, Image.Image):
                image = Image.fromarray(np.asarray(image))
            arrays, grid, _ = proc.slice_image(image)
            pieces += arrays
            sizes += [a.shape[1:] for a in arrays]
            grids.append(grid)
        # every piece zero-padded to the largest of the call; the model crops by slice_sizes
        height = max((s[0] for s in sizes), default=0)
        width = max((s[1] for s in sizes), default=0)
        pixels = torch.zeros(len(pieces), 3, height, width)
        for k, a in enumerate(pieces):
            pixels[k, :, : a.shape[1], : a.shape[2]] = torch.from_numpy(a)
        return BatchFeature({"pixel_values": pixels,
                             "slice_sizes": torch.tensor(sizes, dtype=torch.long).reshape(-1, 2),
                             "image_grids": torch.tensor(grids, dtype=torch.long).reshape(-1, 2)})

    def _get_mm_fields_config(self, hf_inputs: BatchFeature,
                              hf_processor_mm_kwargs: Mapping[str, object]) -> Mapping[str, MultiModalFieldConfig]:
        grids = hf_inputs.get("image_grids", torch.empty(0, 2, dtype=torch.long))
        pieces = grids.prod(-1) + 1  # each image: its slices and the overview
        return {"pixel_values": MultiModalFieldConfig.flat_from_sizes("image", pieces),
                "slice_sizes": MultiModalFieldConfig.flat_from_sizes("image", pieces, keep_on_cpu=True),
                "image_grids": MultiModalFieldConfig.batched("image", keep_on_cpu=True)}

    def _get_prompt_updates(self, mm_items: MultiModalDataItems, hf_processor_mm_kwargs: Mapping[str, object],
                            out_mm_kwargs: MultiModalKwargsItems) -> Sequence[PromptUpdate]:
        image_id, row_id, slice_id = self.info.token_ids()
        side = self.info.image_processor.query_side

        def replacement(item_idx: int):
            item = out_mm_kwargs["image"][item_idx]
            if item is not None:
                cols, rows = (int(v) for v in item["image_grids"].data.tolist())
            else:  # not processed here (a cached item): re-plan from the image's size
                size = mm_items.get_items("image", ImageProcessorItems).get_image_size(item_idx)
                plan = self.info.image_processor.plan(*self.info.image_processor.sliced_size(size.width, size.height))
                cols, rows = plan.grid or (0, 0)
            ids = layout_ids((cols, rows), side, image_id, row_id, slice_id)
            return PromptUpdateDetails.select_token_id(ids, image_id)

        return [PromptReplacement(modality="image", target=[image_id], replacement=replacement)]

