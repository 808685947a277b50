"""How big a model is, without its weights: the model is built on PyTorch's `meta` device from its
configs alone (config.json of the folders, or the tiny sizes), which allocates nothing and reads no
weights, so a 7B model is sized in well under a second. From it: parameters by part, the largest
module, the image tokens the LM sees, and the bytes of the training states under each ZeRO stage.

Model states (mixed-precision AdamW, as DeepSpeed keeps them; docs/estimate.md): every parameter
is held in bf16 (2 bytes); every *trainable* parameter adds its bf16 gradient (2), an fp32
gradient (4), an fp32 master copy (4) and Adam's two moments (8): 18 bytes. ZeRO-1 partitions the
optimizer states (master copy and moments) over the GPUs, ZeRO-2 also the gradients, ZeRO-3 also
the parameters, and a ZeRO-3 rank gathers the largest module's parameters whole (4 bytes each,
DeepSpeed's own allowance). Frozen parameters have no gradient and no optimizer state.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from sicog.config import ModelConfig
from sicog.model.flops import TrainingFlops
from sicog.utils.io import SicogError

PARAM_BYTES = 2  # bf16 weights
GRAD_BYTES = 2 + 4  # the bf16 gradient and its fp32 copy
OPTIMIZER_BYTES = 4 + 4 + 4  # fp32 master weights, Adam's first and second moment
GATHER_BYTES = 4  # ZeRO-3: the largest module gathered whole (DeepSpeed's estimator allows 4 bytes/param)


def _read_config(folder: str, where: str) -> dict:
    try:
        return json.loads(Path(folder, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SicogError(f"{where}: cannot read {folder}/config.json ({e})") from None


def config_from_fields(d: dict, default_type: str):
    """A transformers config from config.json fields (`model_type`, else `default_type`)."""
    from transformers import CONFIG_MAPPING

    d = dict(d)
    return CONFIG_MAPPING[d.pop("model_type", default_type)](**d)


def folder_config(path: str, part: str, where: str):
    """The config of a model part from its folder's config.json (None when the folder is not there
    yet): `part` vision_tower (a CLIP / SigLIP folder, two-tower or vision-only) or language_model."""
    if not Path(path, "config.json").is_file():
        return None
    d = _read_config(path, where)
    if part == "vision_tower":
        if d.get("model_type") in ("clip", "siglip"):
            d = {"model_type": d["model_type"] + "_vision_model", **d.get("vision_config", {})}
        return config_from_fields(d, "clip_vision_model")
    return config_from_fields(d, "qwen2")


def part_configs(model: ModelConfig, where: str = "model") -> tuple | None:
    """(vision config, text config) of a stage's model, read from config.json files only (the tiny
    preset: from its sizes); None when a folder does not exist yet (a step before this one writes it)."""
    if model.preset == "tiny":
        from sicog.model.assembly import tiny_part_configs

        return tiny_part_configs(model.tiny, model.tiny.vocab_size)
    if model.checkpoint:
        if not Path(model.checkpoint, "config.json").is_file():
            return None
        cfg = _read_config(model.checkpoint, f"{where}.checkpoint")
        if "vision_config" not in cfg or "text_config" not in cfg:
            raise SicogError(f"{where}.checkpoint: {model.checkpoint}/config.json has no vision_config / text_config")
        return (config_from_fields(cfg["vision_config"], "clip_vision_model"),
                config_from_fields(cfg["text_config"], "qwen2"))
    vision = folder_config(model.vision_tower, "vision_tower", f"{where}.vision_tower")
    text = folder_config(model.language_model, "language_model", f"{where}.language_model")
    return None if vision is None or text is None else (vision, text)


def meta_model(vision_config, text_config, vision_feature_layer: int = -2):
    """A LLaVA model of these part configs on the meta device (shapes only, no memory)."""
    import torch
    from transformers import LlavaForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from sicog.model.build import llava_config

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.device("meta"):
            return LlavaForConditionalGeneration(llava_config(vision_config, text_config, 0, vision_feature_layer))
    finally:
        hf_logging.set_verbosity(verbosity)


@dataclass(frozen=True)
class ModelSize:
    """What the estimator needs of one model with one choice of trainable parts."""

    params: int  # every parameter
    trainable: int  # parameters that train
    by_part: dict  # vision_tower / projector / language_model -> parameters
    largest_module: int  # parameters of the largest single module (ZeRO-3 gathers it whole)
    train: TrainingFlops  # forward + backward FLOPs with these parts training
    forward: TrainingFlops  # forward only (generation, a reference model)
    hidden: int  # LM hidden size, layers and vocabulary (activation estimate)
    layers: int
    vocab: int
    vision_hidden: int
    vision_layers: int
    vision_tokens: int  # tokens per tower pass (patches + CLS)
    image_size: int  # the tower's input side, px
    patch_size: int

    def image_tokens(self, arch: str = "llava", uhd=None, size: tuple[int, int] | None = None) -> int:
        """LM tokens of one image: llava, one per patch (576 for CLIP-L/14 at 336 px); uhd, the layout of
        its slicing plan (sicog.model.uhd.slicing_uhd) at `size`, or the largest plan (max_slices) when
        the size is unknown."""
        patches = (self.image_size // self.patch_size) ** 2
        if arch != "uhd":
            return patches
        from sicog.model.uhd.slicing_uhd import count_tokens, plan_slices

        side = math.isqrt(uhd.num_queries or 144)
        plan = plan_slices(*(size or self.unknown_image(uhd)), max_slices=uhd.max_slices,
                           scale_resolution=self.image_size, patch_size=self.patch_size, never_split=uhd.never_split)
        return count_tokens(plan, side)

    def unknown_image(self, uhd) -> tuple[int, int]:
        """The size assumed for an image that cannot be read at estimate time: a square of
        `max_slices` slices' area, so that it gets about as many slices as a plan allows."""
        side = math.ceil(math.sqrt(uhd.max_slices)) * self.image_size
        return side, side

    def tower_passes(self, arch: str = "llava", uhd=None, size: tuple[int, int] | None = None) -> int:
        """Vision tower passes per image: 1 (llava); overview + slices (uhd)."""
        if arch != "uhd" or uhd.never_split:
            return 1
        from sicog.model.uhd.slicing_uhd import plan_slices

        return 1 + plan_slices(*(size or self.unknown_image(uhd)), max_slices=uhd.max_slices, scale_resolution=self.image_size,
                               patch_size=self.patch_size).num_slices


def model_size(vision_config, text_config, tunable_parts: list[str], vision_feature_layer: int = -2) -> ModelSize:
    """Parameters and FLOPs coefficients of a LLaVA model of these configs with `tunable_parts` training."""
    from sicog.model.parts import part_of, set_tunable_parts

    model = meta_model(vision_config, text_config, vision_feature_layer)
    for _, p in model.named_parameters():
        p.requires_grad_(False)
    forward = TrainingFlops.of(model)
    by_part = {"vision_tower": 0, "projector": 0, "language_model": 0}
    for name, p in model.named_parameters():
        by_part[part_of(name)] += p.numel()
    set_tunable_parts(model, tunable_parts, None, {})
    params = sum(by_part.values())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    tc, vc = text_config, vision_config
    return ModelSize(params=params, trainable=trainable, by_part=by_part, largest_module=largest,
                     train=TrainingFlops.of(model), forward=forward, hidden=tc.hidden_size,
                     layers=tc.num_hidden_layers, vocab=tc.vocab_size, vision_hidden=vc.hidden_size,
                     vision_layers=vc.num_hidden_layers, vision_tokens=(vc.image_size // vc.patch_size) ** 2 + 1,
                     image_size=vc.image_size, patch_size=vc.patch_size)


def model_state_bytes(params: int, trainable: int, zero_stage: int, gpus: int, largest_module: int = 0) -> int:
    """Bytes per GPU of weights, gradients and optimizer states (see the module docstring)."""
    if zero_stage not in (0, 1, 2, 3):
        raise SicogError(f"ZeRO stage must be 0-3, got {zero_stage}")
    weights, grads, optim = PARAM_BYTES * params, GRAD_BYTES * trainable, OPTIMIZER_BYTES * trainable
    if zero_stage >= 1:
        optim /= gpus
    if zero_stage >= 2:
        grads /= gpus
    if zero_stage == 3:
        weights = weights / gpus + GATHER_BYTES * largest_module
    return int(weights + grads + optim)
