"""The LLaVA-UHD model (`sicog_uhd` checkpoints) for vLLM: CLIP tower on variable-size pieces,
spatial resampler, a causal LM of vLLM's own. Imported by vLLM only (`sicog.model.vllm_uhd`).

It computes what `modeling_uhd.SicogUhdForConditionalGeneration` computes (docs/uhd.md):

- the tower: vLLM's CLIP layers, fed by our own embedding step: each piece's patches plus the
  24x24 (tiny: 4x4) position table resized bicubically to the piece's patch grid, the class
  token in front, the layers up to `vision_feature_layer`; the pieces of one size run as one
  batch (the hf model pads all pieces to one length and masks the padding: the same result);
- the resampler: sicog's `SpatialResampler` itself (cells pooled with the checkpoint's box
  rounding), so its arithmetic is the hf backend's;
- the layout: each image's slice outputs stitched row by row, then the overview; the row and
  slice separators are tokens of the prompt (`uhd_processing`), embedded by the LM;
- the LM: whatever vLLM registers for the text config's architecture (Qwen2 for ours).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F
from transformers import CLIPVisionConfig
from vllm.config import VllmConfig
from vllm.model_executor.models.clip import CLIPVisionTransformer
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal, SupportsPP
from vllm.model_executor.models.utils import (
    AutoWeightsLoader,
    WeightsMapper,
    init_vllm_registered_model,
    maybe_prefix,
)
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.sequence import IntermediateTensors

from sicog.model.uhd.resampler_uhd import SpatialResampler
from sicog.model.vllm_uhd.uhd_processing import (
    UhdDummyInputsBuilder,
    UhdMultiModalProcessor,
    UhdProcessingInfo,
)


def tower_layers(num_layers: int, feature_layer: int) -> int:
    """How many tower layers the selected features need (hidden_states[k] follows k layers;
    a negative k counts from the end, -1 being the last layer's output)."""
    layers = feature_layer if feature_layer >= 0 else num_layers + 1 + feature_layer
    if not 0 < layers <= num_layers:
        raise ValueError(f"vision_feature_layer {feature_layer} is outside a tower of {num_layers} layers")
    return layers


def lm_architectures(text_config) -> list[str]:
    """The causal-LM class names vLLM should build for the text config (Qwen2ForCausalLM for ours)."""
    if getattr(text_config, "architectures", None):
        return list(text_config.architectures)
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(text_config.model_type)
    if name is None:
        raise ValueError(f"sicog_uhd: no causal-LM class is known for text model_type {text_config.model_type!r}")
    return [name]


def _pieces(pixel_values, slice_sizes) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """Each piece cropped to its own (height, width) from the zero-padded batches vLLM hands over
    (one tensor, or one per request when their padded sizes differ)."""
    batches = pixel_values if isinstance(pixel_values, (list, tuple)) else [pixel_values]
    sizes = slice_sizes if isinstance(slice_sizes, (list, tuple)) else [slice_sizes]
    flat_pixels = [p for batch in batches for p in (batch if batch.dim() == 4 else batch[None])]
    flat_sizes = [tuple(int(v) for v in s) for batch in sizes for s in batch.reshape(-1, 2).tolist()]
    if len(flat_pixels) != len(flat_sizes):
        raise ValueError(f"sicog_uhd: {len(flat_pixels)} pieces but {len(flat_sizes)} piece sizes")
    return [p[:, :h, :w] for p, (h, w) in zip(flat_pixels, flat_sizes)], flat_sizes


@MULTIMODAL_REGISTRY.register_processor(UhdMultiModalProcessor, info=UhdProcessingInfo,
                                        dummy_inputs=UhdDummyInputsBuilder)
class SicogUhdForVllm(nn.Module, SupportsMultiModal, SupportsPP):
    """`SicogUhdForConditionalGeneration` in vLLM (see the module docstring)."""

    # checkpoint names -> this module's; the tower's q/k/v are stacked by vLLM's CLIP loader
    hf_to_vllm_mapper = WeightsMapper(orig_to_new_prefix={
        "model.vision_tower.vision_model.": "vision_tower.",  # the older nested layout
        "model.vision_tower.": "vision_tower.",
        "model.multi_modal_projector.": "resampler.",
        "model.language_model.": "language_model.model.",
        "lm_head.": "language_model.lm_head.",
    })

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return "<image>"
        raise ValueError("sicog_uhd takes images only")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        config = vllm_config.model_config.hf_config
        vision = config.vision_config
        if not isinstance(vision, CLIPVisionConfig):
            raise ValueError(f"sicog_uhd in vLLM: the vision tower must be CLIP, got {type(vision).__name__} "
                             "(SigLIP towers run with the hf backend only)")
        self.config = config
        self.configure_mm_token_handling(vocab_size=config.text_config.vocab_size,
                                         mm_token_ids=[config.image_token_id])
        self.native = vision.image_size // vision.patch_size
        self.take_class = config.vision_feature_select == "cls_patch"
        with self._mark_tower_model(vllm_config, "image"):
            self.vision_tower = CLIPVisionTransformer(
                vision, vllm_config.quant_config, require_post_norm=False, prefix=maybe_prefix(prefix, "vision_tower"),
                num_hidden_layers_override=tower_layers(vision.num_hidden_layers, config.vision_feature_layer))
            self.resampler = SpatialResampler(config.query_side, config.text_config.hidden_size,
                                              config.resampler_heads, vision.hidden_size,
                                              box_rounding=config.resampler_box_rounding)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config, hf_config=config.text_config, prefix=maybe_prefix(prefix, "language_model"),
                architectures=lm_architectures(config.text_config))
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    # ------------------------------------------------------------------ vision
    def _positions(self, grid: tuple[int, int], dtype) -> torch.Tensor:
        """The patch position table at a (rows, cols) patch grid: (rows*cols, width)."""
        table = self.vision_tower.embeddings.position_embedding.weight[1:]
        if grid == (self.native, self.native):
            return table
        square = table.reshape(1, self.native, self.native, -1).permute(0, 3, 1, 2).float()
        resized = F.interpolate(square, size=grid, mode="bicubic", align_corners=False)
        return resized.to(dtype)[0].flatten(1).T

    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Tower features (n, h*w, width) of n pieces of one size (n, 3, H, W)."""
        tower = self.vision_tower
        emb = tower.embeddings
        dtype = emb.patch_embedding.weight.dtype
        patches = emb.patch_embedding(pixels.to(dtype))  # (n, width, rows, cols)
        grid = tuple(patches.shape[2:])
        tokens = patches.flatten(2).transpose(1, 2) + self._positions(grid, dtype)
        cls = (emb.class_embedding + emb.position_embedding.weight[0]).expand(tokens.shape[0], 1, -1)
        hidden = tower.pre_layrnorm(torch.cat([cls.to(dtype), tokens], dim=1))
        for layer in tower.encoder.layers:
            hidden = layer(hidden)
        first = 0 if self.take_class else 1  # cls_patch: the class token and all patches but the last
        return hidden[:, first: first + grid[0] * grid[1]]

    def _image_features(self, pixel_values, slice_sizes, image_grids) -> list[torch.Tensor]:
        pieces, sizes = _pieces(pixel_values, slice_sizes)
        patch = self.config.vision_config.patch_size
        features: list[torch.Tensor | None] = [None] * len(pieces)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, size in enumerate(sizes):
            groups.setdefault(size, []).append(k)
        for idx in groups.values():  # the pieces of one size in one tower pass
            out = self._encode(torch.stack([pieces[k] for k in idx]))
            for k, f in zip(idx, out):
                features[k] = f
        grids = [(h // patch, w // patch) for h, w in sizes]
        tokens = self.resampler(features, grids)  # (pieces, side^2, LM width)
        grid_list = image_grids if isinstance(image_grids, (list, tuple)) else list(image_grids)
        side, out, k = self.config.query_side, [], 0
        for grid in grid_list:
            cols, rows = (int(v) for v in torch.as_tensor(grid).reshape(2).tolist())
            n = cols * rows
            parts = []
            if n:  # slice outputs stitched into one (rows*side) x (cols*side) map, row-major
                cells = tokens[k: k + n].reshape(rows, cols, side, side, -1).permute(0, 2, 1, 3, 4)
                parts.append(cells.reshape(rows * side * cols * side, -1))
            parts.append(tokens[k + n])
            out.append(torch.cat(parts))
            k += n + 1
        if k != tokens.shape[0]:
            raise ValueError(f"sicog_uhd: image_grids account for {k} pieces, pixel_values holds {tokens.shape[0]}")
        return out

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        pixel_values = kwargs.get("pixel_values")
        if pixel_values is None:
            return []
        return self._image_features(pixel_values, kwargs["slice_sizes"], kwargs["image_grids"])

    # ------------------------------------------------------------------ language model
    def forward(self, input_ids: torch.Tensor | None, positions: torch.Tensor,
                intermediate_tensors: IntermediateTensors | None = None, inputs_embeds: torch.Tensor | None = None,
                **kwargs: object) -> torch.Tensor | IntermediateTensors:
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self).load_weights(weights, mapper=self.hf_to_vllm_mapper)
