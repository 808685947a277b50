"""Build a stock `LlavaForConditionalGeneration` + `LlavaProcessor` from a `ModelConfig`.

Three sources, exactly one per config:
- `checkpoint`: an existing LLaVA folder (ours, or a stock llava-hf one);
- `preset: tiny`: random init of a few-layer CLIP vision tower + Qwen2 LM with the offline
  tokenizer of `sicog.model.tokenizer` (no download, runs on CPU);
- `vision_tower` + `language_model`: local folders laid out like `clip-vit-large-patch14-336`
  and `Qwen2-7B-Instruct`, joined by a fresh 2-layer GELU MLP projector (or one loaded from
  `mm_projector`, the stage-1 output).

The result is always a plain transformers model and processor, so a saved checkpoint loads in
stock transformers (and vLLM / lmms-eval) without importing sicog.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from sicog.config import ModelConfig
from sicog.model.assembly import (
    check_part_folders,
    chosen_source,
    default_generation_config,
    finish_assembly,
    load_lm_tokenizer,
    read_corpus_files,
    resolve_attn_implementation,
    tiny_part_configs,
)
from sicog.model.checkpoint import load_checkpoint, load_projector
from sicog.utils.io import SicogError

log = logging.getLogger(__name__)

#: features of the penultimate CLIP layer with CLS dropped ("default" strategy), LLaVA-1.5 style
FEATURE_SELECT_STRATEGY = "default"
#: CLIP prepends a CLS token; the processor must count it before "default" drops it again
NUM_ADDITIONAL_IMAGE_TOKENS = 1


def make_processor(image_processor, tokenizer, patch_size: int, chat_template: str | None = None):
    """A `LlavaProcessor` whose `<image>` expansion matches a CLIP tower's feature count.

    `num_additional_image_tokens=1` counts CLIP's CLS token, which the "default" feature
    strategy then drops: (size / patch)^2 image tokens, exactly the number of features.
    """
    from transformers import LlavaProcessor

    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy=FEATURE_SELECT_STRATEGY,
        num_additional_image_tokens=NUM_ADDITIONAL_IMAGE_TOKENS,
        chat_template=chat_template if chat_template is not None else tokenizer.chat_template,
    )


def tiny_image_processor(image_size: int, pad_to_square: bool = False):
    """CLIP preprocessing (PIL backend: no torchvision) at `image_size` px square."""
    return llava_image_processor({"size": {"shortest_edge": image_size},
                                  "crop_size": {"height": image_size, "width": image_size}}, pad_to_square)


def llava_image_processor(settings: dict | str, pad_to_square: bool = False):
    """CLIP's image processor (PIL backend) from its settings or a tower folder. `pad_to_square`:
    transformers' LLaVA image processor instead, which first pads to a square with the mean
    colour (LLaVA-1.5's `expand2square`), then resizes and crops as CLIP's does; both are stock
    classes, so the checkpoint still loads with `AutoProcessor` alone."""
    from transformers import CLIPImageProcessorPil, LlavaImageProcessorPil

    if not pad_to_square:
        cls, extra = CLIPImageProcessorPil, {}
    else:
        cls, extra = LlavaImageProcessorPil, {"do_pad": True}
    if isinstance(settings, str):
        return cls.from_pretrained(settings, **extra)
    return cls(**settings, **extra)


def llava_config(vision_config, text_config, image_token_id: int, vision_feature_layer: int):
    from transformers import LlavaConfig

    grid = vision_config.image_size // vision_config.patch_size
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        image_seq_length=grid * grid,
        projector_hidden_act="gelu",
        vision_feature_select_strategy=FEATURE_SELECT_STRATEGY,
        vision_feature_layer=vision_feature_layer,
    )


# --------------------------------------------------------------------------- sources
def build_tiny(cfg: ModelConfig, seed: int = 0, dtype=None):
    """Random-init tiny LLaVA (CLIP vision + Qwen2) with the offline tokenizer."""
    import torch
    from transformers import LlavaForConditionalGeneration

    from sicog.model.tokenizer import CHAT_TEMPLATE, IMAGE_TOKEN, build_tiny_tokenizer

    t = cfg.tiny  # checked: image_size a multiple of patch_size (TinyModelConfig.cross_check)
    tokenizer = build_tiny_tokenizer(read_corpus_files(t.tokenizer_corpus), vocab_size=t.vocab_size)
    vision_config, text_config = tiny_part_configs(
        t, len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = llava_config(vision_config, text_config, image_token_id, cfg.vision_feature_layer)
    config._attn_implementation = resolve_attn_implementation(cfg.attn_implementation)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    if dtype is not None:
        model = model.to(dtype)
    model.generation_config = default_generation_config(tokenizer)
    processor = make_processor(tiny_image_processor(t.image_size, cfg.pad_to_square), tokenizer, t.patch_size, CHAT_TEMPLATE)
    return model, processor


def build_from_parts(cfg: ModelConfig, seed: int = 0, dtype=None):
    """CLIP vision folder + causal-LM folder + a fresh (or stage-1) projector."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        CLIPVisionModel,
        LlavaForConditionalGeneration,
    )
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector
    from transformers.utils import logging as hf_logging

    from sicog.model.tokenizer import IMAGE_TOKEN

    check_part_folders(cfg)
    attn = resolve_attn_implementation(cfg.attn_implementation)
    load_kw = {"dtype": dtype if dtype is not None else torch.float32, "attn_implementation": attn}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a full CLIP folder also holds the text tower: expected leftovers
    try:
        vision = CLIPVisionModel.from_pretrained(cfg.vision_tower, **load_kw)
    finally:
        hf_logging.set_verbosity(verbosity)
    lm = AutoModelForCausalLM.from_pretrained(cfg.language_model, **load_kw)
    tokenizer = load_lm_tokenizer(cfg.language_model)
    if len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
        lm.resize_token_embeddings(len(tokenizer))
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    config = llava_config(vision.config, lm.config, image_token_id, cfg.vision_feature_layer)
    config._attn_implementation = attn
    # Build the shell on the meta device (no memory), then move the loaded parts in.
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision
    model.model.language_model = getattr(lm, lm.base_model_prefix)
    model.lm_head = lm.get_output_embeddings()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(load_kw["dtype"])
    finish_assembly(model, cfg.language_model, tokenizer)

    image_processor = llava_image_processor(cfg.vision_tower, cfg.pad_to_square)
    processor = make_processor(image_processor, tokenizer, vision.config.patch_size)
    return model, processor


def build_from_checkpoint(cfg: ModelConfig, seed: int = 0, dtype=None):
    """Continue from an existing, complete LLaVA folder (ours or a stock llava-hf one)."""
    path = Path(cfg.checkpoint)
    if not Path(path, "config.json").is_file():
        raise SicogError(f"model.checkpoint: {path} is not a checkpoint folder (no config.json)")
    from sicog.model.uhd.build import is_uhd_folder

    if cfg.arch != "uhd" and is_uhd_folder(path):
        raise SicogError(f"model.checkpoint: {path} is a uhd checkpoint; set model.arch: uhd")
    attn = resolve_attn_implementation(cfg.attn_implementation)
    try:  # refuses a folder with missing or unreadable weights (checkpoint_problems) up front
        return load_checkpoint(path, dtype=dtype, attn_implementation=attn)
    except SicogError as e:
        raise SicogError(f"model.checkpoint: {e}") from None
    except (OSError, ValueError, RuntimeError) as e:  # weights that do not fit the config.json
        raise SicogError(f"model.checkpoint: {path}: cannot load the model: {type(e).__name__}: {e}") from None


_SOURCES = {"checkpoint": build_from_checkpoint, "preset": build_tiny, "parts": build_from_parts}


def _build_llava(cfg: ModelConfig, seed: int, dtype):
    source = chosen_source(cfg)
    model, processor = _SOURCES[source](cfg, seed=seed, dtype=dtype)
    if cfg.mm_projector:
        load_projector(model, cfg.mm_projector)
    return model, processor


def _build_uhd(cfg: ModelConfig, seed: int, dtype):
    """`arch: uhd` from its one source: a uhd checkpoint, the tiny preset, or parts."""
    from sicog.model.uhd.build import build_uhd_from_parts, build_uhd_tiny, is_uhd_folder

    source = chosen_source(cfg)
    if source == "checkpoint":
        if not is_uhd_folder(cfg.checkpoint):
            raise SicogError(f"model.checkpoint: {cfg.checkpoint} is not a uhd checkpoint (config.json model_type "
                             "is not 'sicog_uhd'); set model.arch: llava for LLaVA folders")
        model, processor = build_from_checkpoint(cfg, seed=seed, dtype=dtype)
    elif source == "preset":
        model, processor = build_uhd_tiny(cfg, seed=seed, dtype=dtype)
    else:
        model, processor = build_uhd_from_parts(cfg, seed=seed, dtype=dtype)
    if cfg.mm_projector:
        load_projector(model, cfg.mm_projector)
    return model, processor


#: arch -> builder(cfg, seed, dtype)
BUILDERS: dict[str, Callable] = {"llava": _build_llava, "uhd": _build_uhd}


def build_model(cfg: ModelConfig, seed: int = 0, *, dtype=None):
    """Build (model, processor) for `cfg`: a stock LlavaForConditionalGeneration + LlavaProcessor,
    or with `arch: uhd` the LLaVA-UHD model of sicog.model.uhd (remote code in its checkpoints).

    `seed` fixes random initialisation (tiny preset, fresh projector). `dtype` (optional torch
    dtype) is the parameter dtype; default float32 for new models, the saved dtype for checkpoints.
    """
    model, processor = BUILDERS[cfg.arch](cfg, seed, dtype)  # arch: one of the config's choices, checked
    log.info(
        "built %s model (%s): %.2fM parameters",
        cfg.arch,
        cfg.checkpoint or cfg.preset or f"{cfg.vision_tower} + {cfg.language_model}",
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    return model, processor
