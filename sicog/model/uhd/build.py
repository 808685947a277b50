"""Build, register and save `arch: uhd` models (the sicog side of the remote-code modules).

`register_uhd` makes the Auto classes know the architecture in this process and marks the classes
for remote code, so `save_pretrained` copies their modules into the checkpoint with an `auto_map`:
stock transformers then loads it with `trust_remote_code=True` and no sicog installed.
"""

from __future__ import annotations

import json
from pathlib import Path

from sicog.config import ModelConfig
from sicog.utils.io import SicogError

ROW_TOKEN = "<uhd_row>"  # closes every feature row of the slice map
SLICE_TOKEN = "<uhd_slice>"  # between the slice map and the overview
DEFAULT_QUERIES, TINY_QUERIES = 144, 16

_registered = False


def register_uhd() -> None:
    """Register the config / model / processors with the Auto classes (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor

    from sicog.model.uhd.configuration_uhd import SicogUhdConfig
    from sicog.model.uhd.image_processing_uhd import SicogUhdImageProcessor
    from sicog.model.uhd.modeling_uhd import SicogUhdForConditionalGeneration
    from sicog.model.uhd.processing_uhd import SicogUhdProcessor

    AutoConfig.register(SicogUhdConfig.model_type, SicogUhdConfig, exist_ok=True)
    AutoModelForImageTextToText.register(SicogUhdConfig, SicogUhdForConditionalGeneration, exist_ok=True)
    AutoImageProcessor.register(SicogUhdConfig, image_processor_classes={"pil": SicogUhdImageProcessor},
                                exist_ok=True)
    AutoProcessor.register(SicogUhdConfig, SicogUhdProcessor, exist_ok=True)
    SicogUhdConfig.register_for_auto_class()
    SicogUhdForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")
    SicogUhdImageProcessor.register_for_auto_class("AutoImageProcessor")
    SicogUhdProcessor.register_for_auto_class("AutoProcessor")
    _registered = True


def is_uhd_folder(path) -> bool:
    try:
        return json.loads(Path(path, "config.json").read_text(encoding="utf-8")).get("model_type") == "sicog_uhd"
    except (OSError, ValueError, AttributeError):
        return False


def add_layout_tokens(tokenizer) -> None:
    """The two separator tokens of the layout, as special tokens (one id each, never split)."""
    from tokenizers import AddedToken

    missing = [t for t in (ROW_TOKEN, SLICE_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)


def make_uhd_processor(tokenizer, cfg: ModelConfig, scale_resolution: int, patch_size: int, side: int,
                       image_mean=None, image_std=None, chat_template: str | None = None):
    from sicog.model.tokenizer import IMAGE_TOKEN
    from sicog.model.uhd.image_processing_uhd import CLIP_MEAN, CLIP_STD, SicogUhdImageProcessor
    from sicog.model.uhd.processing_uhd import SicogUhdProcessor

    u = cfg.uhd
    longest = u.inference_longest_side
    if longest is None:
        longest = round(scale_resolution * 1024 / 336)
    image_processor = SicogUhdImageProcessor(
        max_slices=u.max_slices, scale_resolution=scale_resolution, patch_size=patch_size, query_side=side,
        image_mean=image_mean or CLIP_MEAN, image_std=image_std or CLIP_STD, never_split=u.never_split,
        pad_to_square=cfg.pad_to_square, max_pixels=u.max_pixels, inference_longest_side=longest or None)
    return SicogUhdProcessor(image_processor, tokenizer, chat_template=chat_template or tokenizer.chat_template,
                             image_token=IMAGE_TOKEN, row_token=ROW_TOKEN, slice_token=SLICE_TOKEN)


def uhd_config(cfg: ModelConfig, vision_config, text_config, tokenizer, num_queries: int, head_dim: int = 128):
    from sicog.model.tokenizer import IMAGE_TOKEN
    from sicog.model.uhd.configuration_uhd import SicogUhdConfig

    # num_queries: a square (UhdSettings.cross_check; the defaults 16 and 144 are)
    if text_config.hidden_size % 4:
        raise SicogError(f"model: the LM width ({text_config.hidden_size}) must be a multiple of 4 for the "
                         "resampler's 2-D sin-cos positions")
    ids = tokenizer.convert_tokens_to_ids
    return SicogUhdConfig(
        vision_config=vision_config, text_config=text_config, image_token_id=ids(IMAGE_TOKEN),
        row_token_id=ids(ROW_TOKEN), slice_token_id=ids(SLICE_TOKEN), num_queries=num_queries,
        vision_feature_layer=cfg.vision_feature_layer, max_slices=cfg.uhd.max_slices,
        scale_resolution=vision_config.image_size, resampler_head_dim=head_dim,
        resampler_box_rounding=cfg.uhd.box_rounding)


def build_uhd_tiny(cfg: ModelConfig, seed: int = 0, dtype=None):
    """Random-init tiny LLaVA-UHD (CLIP + Qwen2 of the `tiny` sizes, 16 resampler queries)."""
    import torch

    from sicog.model.assembly import (
        default_generation_config,
        read_corpus_files,
        resolve_attn_implementation,
        tiny_part_configs,
    )
    from sicog.model.tokenizer import CHAT_TEMPLATE, build_tiny_tokenizer
    from sicog.model.uhd.modeling_uhd import SicogUhdForConditionalGeneration

    register_uhd()
    t = cfg.tiny  # checked: image_size a multiple of patch_size (TinyModelConfig.cross_check)
    tokenizer = build_tiny_tokenizer(read_corpus_files(t.tokenizer_corpus), vocab_size=t.vocab_size)
    add_layout_tokens(tokenizer)
    vision_config, text_config = tiny_part_configs(
        t, len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    num_queries = cfg.uhd.num_queries or TINY_QUERIES
    config = uhd_config(cfg, vision_config, text_config, tokenizer, num_queries, head_dim=t.hidden_size // t.num_heads)
    config._attn_implementation = resolve_attn_implementation(cfg.attn_implementation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SicogUhdForConditionalGeneration(config)
    if dtype is not None:
        model = model.to(dtype)
    model.generation_config = default_generation_config(tokenizer)
    processor = make_uhd_processor(tokenizer, cfg, t.image_size, t.patch_size, config.query_side,
                                   chat_template=CHAT_TEMPLATE)
    return model, processor


def _vision_from_folder(path: str, load_kw: dict):
    """The vision tower of a local CLIP or SigLIP folder (a full two-tower folder or a vision-only one)."""
    from transformers import AutoConfig, CLIPVisionModel, SiglipVisionModel
    from transformers.utils import logging as hf_logging

    model_type = AutoConfig.from_pretrained(path).model_type
    classes = {"clip": CLIPVisionModel, "clip_vision_model": CLIPVisionModel,
               "siglip": SiglipVisionModel, "siglip_vision_model": SiglipVisionModel}
    if model_type not in classes:
        raise SicogError(f"model.vision_tower: {path} is a {model_type!r} model; arch uhd takes CLIP or SigLIP towers")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a two-tower folder also holds the text tower: expected leftovers
    try:
        return classes[model_type].from_pretrained(path, **load_kw)
    finally:
        hf_logging.set_verbosity(verbosity)


def normalisation_of(path: str) -> tuple[list[float] | None, list[float] | None]:
    try:
        pre = json.loads(Path(path, "preprocessor_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    return pre.get("image_mean"), pre.get("image_std")


def init_separators(embedding, tokenizer, ids: list[int], own_rows: int, where: str) -> None:
    """Start the `<uhd_row>` / `<uhd_slice>` embedding rows from the LM's rows `ids` (the authors'
    separators are those rows of Qwen2's table: 13 and 29892); `[]` keeps the rows as they are."""
    import torch

    if not ids:  # else two (UhdSettings.cross_check)
        return
    for token, source in zip((ROW_TOKEN, SLICE_TOKEN), ids):
        if not 0 <= source < own_rows:
            raise SicogError(f"model.uhd.separator_init_ids: {source} is outside the vocabulary of {where} "
                             f"({own_rows} rows); set [] to start {token} from a fresh row")
        with torch.no_grad():
            embedding[tokenizer.convert_tokens_to_ids(token)] = embedding[source]


def build_uhd_from_parts(cfg: ModelConfig, seed: int = 0, dtype=None):
    """A CLIP / SigLIP folder + a causal-LM folder + a fresh resampler (the authors' stage-1 start)."""
    import torch
    from transformers import AutoModelForCausalLM

    from sicog.model.assembly import (
        check_part_folders,
        finish_assembly,
        load_lm_tokenizer,
        resolve_attn_implementation,
    )
    from sicog.model.uhd.modeling_uhd import SicogUhdForConditionalGeneration
    from sicog.model.uhd.resampler_uhd import SpatialResampler

    register_uhd()
    check_part_folders(cfg)
    attn = resolve_attn_implementation(cfg.attn_implementation)
    load_kw = {"dtype": dtype if dtype is not None else torch.float32, "attn_implementation": attn}
    vision = _vision_from_folder(cfg.vision_tower, load_kw)
    lm = AutoModelForCausalLM.from_pretrained(cfg.language_model, **load_kw)
    tokenizer = load_lm_tokenizer(cfg.language_model)
    add_layout_tokens(tokenizer)
    own_rows = lm.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > own_rows:
        lm.resize_token_embeddings(len(tokenizer))
    init_separators(lm.get_input_embeddings().weight, tokenizer, cfg.uhd.separator_init_ids, own_rows,
                    cfg.language_model)
    config = uhd_config(cfg, vision.config, lm.config, tokenizer, cfg.uhd.num_queries or DEFAULT_QUERIES)
    config._attn_implementation = attn
    with torch.device("meta"):  # the shell costs no memory; the loaded parts move in
        model = SicogUhdForConditionalGeneration(config)
    model.model.vision_tower = vision
    model.model.language_model = getattr(lm, lm.base_model_prefix)
    model.lm_head = lm.get_output_embeddings()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        resampler = SpatialResampler(config.query_side, config.text_config.hidden_size, config.resampler_heads,
                                     config.vision_config.hidden_size)
        for module in resampler.modules():
            model._init_weights(module)
    model.model.multi_modal_projector = resampler.to(load_kw["dtype"])
    finish_assembly(model, cfg.language_model, tokenizer)
    mean, std = normalisation_of(cfg.vision_tower)
    processor = make_uhd_processor(tokenizer, cfg, vision.config.image_size, vision.config.patch_size,
                                   config.query_side, mean, std)
    return model, processor


def load_uhd_folder(path, dtype=None, device=None, attn_implementation: str | None = None):
    """(model, processor) of a `sicog_uhd` checkpoint folder, with this process's classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    register_uhd()
    kwargs = {"dtype": dtype if dtype is not None else "auto"}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)
    if device is not None:
        model = model.to(device)
    return model, AutoProcessor.from_pretrained(str(path))
