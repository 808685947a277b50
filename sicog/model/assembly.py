"""Helpers shared by the builders of every architecture (llava in `sicog.model.build`, uhd in
`sicog.model.uhd.build`): attention choice, the LM's tokenizer, the generation config, the source
a config names and the checks on part folders. A leaf of the model layer: it imports no builder."""

from __future__ import annotations

import logging
from pathlib import Path

from sicog.config import ModelConfig
from sicog.model.weights import safetensors_problem
from sicog.utils.io import SicogError

log = logging.getLogger("sicog.model.build")  # the builders' one log


def resolve_attn_implementation(name: str) -> str:
    """`auto` -> flash_attention_2 where it can run, else sdpa; an explicit flash_attention_2 that
    cannot run falls back to sdpa with a warning (the reason logged, `model.kernels`)."""
    from sicog.model.kernels import flash_attention_problem

    if name in ("sdpa", "eager"):
        return name
    why = flash_attention_problem()
    if why is None:
        return "flash_attention_2"
    if name == "flash_attention_2":
        log.warning("model.attn_implementation: flash_attention_2 requested, falling back to sdpa: %s", why)
    else:
        log.info("model.attn_implementation: auto -> sdpa (flash_attention_2 unavailable: %s)", why)
    return "sdpa"


def chosen_source(cfg: ModelConfig) -> str:
    """`checkpoint`, `preset` or `parts`: exactly one source per config, checked."""
    chosen = {
        "checkpoint": cfg.checkpoint is not None,
        "preset": cfg.preset is not None,
        "parts": cfg.vision_tower is not None or cfg.language_model is not None,
    }
    if sum(chosen.values()) != 1:
        given = [k for k, v in chosen.items() if v]
        raise SicogError(
            "model: give exactly one source: model.checkpoint, or model.preset, or both "
            f"model.vision_tower and model.language_model (given: {', '.join(given) or 'none'})"
        )
    if chosen["parts"] and (cfg.vision_tower is None or cfg.language_model is None):
        raise SicogError("model.vision_tower and model.language_model must be given together")
    return next(k for k, v in chosen.items() if v)


def check_part_folders(cfg: ModelConfig) -> None:
    """`model.vision_tower` and `model.language_model` are model folders whose safetensors files
    are whole (a cut-short copy fails here, named, before anything loads)."""
    for key in ("vision_tower", "language_model"):
        path = getattr(cfg, key)
        if not Path(path, "config.json").is_file():
            raise SicogError(f"model.{key}: {path} is not a model folder (no config.json)")
        for f in sorted(Path(path).glob("*.safetensors")):
            if problem := safetensors_problem(f):
                raise SicogError(f"model.{key}: {path}: {problem}")


def load_lm_tokenizer(path: str):
    """The LM's tokenizer with `<image>` added as one special token and a ChatML template."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    from sicog.model.tokenizer import CHAT_TEMPLATE, IM_START, IMAGE_TOKEN

    tokenizer = AutoTokenizer.from_pretrained(path)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    template = tokenizer.chat_template
    if template is None or (isinstance(template, str) and IM_START in template):
        # Qwen's own template renders list content as a Python repr; ours accepts image parts.
        tokenizer.chat_template = CHAT_TEMPLATE
    else:
        log.warning("keeping the non-ChatML chat template of %s; check that it renders image parts", path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def finish_assembly(model, language_model: str, tokenizer) -> None:
    """Last step of assembling a model from parts (llava and uhd): no weight left on the meta
    device, and the LM's own generation config (or greedy defaults) with a pad token."""
    from transformers import GenerationConfig

    leftover = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
    if leftover:
        raise RuntimeError(f"parameters left uninitialised after assembly: {leftover[:5]}")
    try:
        model.generation_config = GenerationConfig.from_pretrained(language_model)
    except OSError:
        model.generation_config = default_generation_config(tokenizer)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def default_generation_config(tokenizer):
    """Greedy by default; eos = the tokenizer's eos (`<|im_end|>`), pad = its pad token."""
    from transformers import GenerationConfig

    return GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )


def read_corpus_files(paths: list[str]) -> list[str]:
    texts = []
    for p in paths:
        if not Path(p).is_file():
            raise SicogError(f"model.tiny.tokenizer_corpus: file not found: {p}")
        texts.extend(line for line in Path(p).read_text(encoding="utf-8").splitlines() if line.strip())
    return texts


def tiny_part_configs(t, vocab_size: int, **text_ids):
    """(CLIPVisionConfig, Qwen2Config) of the `tiny` sizes `t` (a TinyModelConfig); `text_ids`: the
    tokenizer's pad / eos ids. One place for both arches and for sizing a model without building it."""
    from transformers import CLIPVisionConfig, Qwen2Config

    vision_config = CLIPVisionConfig(
        hidden_size=t.vision_hidden_size,
        intermediate_size=4 * t.vision_hidden_size,
        num_hidden_layers=t.vision_layers,
        num_attention_heads=t.vision_heads,
        image_size=t.image_size,
        patch_size=t.patch_size,
        projection_dim=t.vision_hidden_size,
    )
    text_config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_kv_heads,
        max_position_embeddings=t.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=None,
        **text_ids,
    )
    return vision_config, text_config
