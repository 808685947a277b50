"""`sicog convert llava-uhd`: the authors' LLaVA-UHD v1 / SICOG checkpoint -> a sicog `uhd` folder.

Their folder (`llava_qwen`): Qwen2 weights under `model.` and `lm_head.`, the CLIP tower under
`model.vision_tower.vision_tower.vision_model.`, the resampler under `model.mm_projector.`, a
Qwen tokenizer and a config.json with their `mm_*` settings. Every tensor is placed by name and
its shape checked against the model the converted config describes; a tensor that cannot be
placed, or a weight of ours that nothing fills, stops the conversion with its name. Their two
separators are rows of the embedding table (a newline and a comma id of the LLaMA vocabulary,
13 and 29892 by default); those rows are copied to our `<uhd_row>` and `<uhd_slice>` tokens.
Shards are converted one at a time (a 7B model never sits in memory twice); safetensors and
PyTorch `.bin` shards (read with `weights_only=True`) both convert.

Their config.json is a transformers 4.x `LlavaQwenConfig`, a `Qwen2Config` with their `mm_*`
settings beside the LM's (a top-level `rope_theta`, `torch_dtype`, ...). The LM's part is parsed
by transformers' own `Qwen2Config.from_dict`, so every LM setting that release wrote (rope theta
and scaling, sliding window, norm eps, tying, vocabulary) reaches the converted model as it
reached theirs; docs/uhd.md lists the rest of what carries over.

The output records the settings that made it, its inputs by content: the size and modification
time of every file of --checkpoint and --vision-tower. A rerun with the same ones has nothing to
do; a rewritten weight, tokenizer or config file is other settings (refused unless --overwrite).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.utils.io import SicogError, atomic_dir, model_files_fingerprint, write_json

log = logging.getLogger(__name__)

DESCRIPTION = __doc__
#: their projector types -> resampler queries
PROJECTOR_QUERIES = {"adapt_spatial_resampler_v1": 144, "uhd_v1_query64": 64}
#: their `mm_vision_select_feature` values the uhd model reproduces (the multi-layer ones it does not)
SELECT_FEATURES = ("patch", "cls_patch")
#: keys of their config.json that belong to LLaVA's training or multimodal setup, not to the LM
NOT_LM_KEYS = ("mm_", "image_", "tokenizer_", "tune_", "freeze_", "unfreeze_", "use_mm_proj", "architectures",
               "model_type", "_name_or_path", "transformers_version")
#: their tensors that the uhd_v1 model never uses (reported, not converted)
UNUSED = ("model.image_newline", "model.faster_token")
META = "sicog_meta.json"


@dataclass
class ConvertUhdConfig:
    checkpoint: str = setting(None, "the authors' LLaVA-UHD v1 / SICOG checkpoint folder (llava_qwen layout)",
                              required=True, metavar="DIR")
    vision_tower: str = setting(None, "local CLIP folder their tower was built from (its config and "
                                "normalisation; their folder names it in mm_vision_tower)", required=True,
                                metavar="DIR")
    out: str = setting(None, "the sicog uhd checkpoint folder to write", required=True, metavar="DIR")
    row_token_id: int = setting(13, "embedding row of their row separator (their newline id)", min=0)
    slice_token_id: int = setting(29892, "embedding row of their separator before the overview (their comma id)", min=0)
    box_rounding: str = setting("bfloat16", "the resampler's cell edges: rounded to bfloat16 as in the authors' "
                                "resampler (matches their outputs), or exact (none)", choices=("bfloat16", "none"))
    overwrite: bool = setting(False, "replace an --out made with other settings")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, ConvertUhdConfig)


def run(args: argparse.Namespace) -> int:
    convert(config_from_args(ConvertUhdConfig, args))
    return 0


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SicogError(f"{path}: cannot read {what}: {e}") from None


def _their_shards(folder: Path) -> list[Path]:
    """Their weight files: safetensors first, else PyTorch .bin (each alone or listed in an index)."""
    for single, index_name in (("model.safetensors", "model.safetensors.index.json"),
                               ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        index = folder / index_name
        if index.is_file():
            weight_map = _read_json(index, "the weight index").get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise SicogError(f"{index}: key weight_map is missing or empty")
            names = sorted(set(weight_map.values()))
            missing = [n for n in names if not (folder / n).is_file()]
            if missing:
                raise SicogError(f"{index}: weight shard(s) {', '.join(missing)} missing")
            return [folder / n for n in names]
        if (folder / single).is_file():
            return [folder / single]
    raise SicogError(f"{folder}: no weights (model.safetensors, pytorch_model.bin or their .index.json)")


@contextlib.contextmanager
def _open_shard(shard: Path):
    """(names, get) of one shard: `get(name)` reads one tensor (safetensors lazily; a .bin shard is
    loaded once, memory-mapped where its format allows, with `weights_only=True`)."""
    if shard.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            f = safe_open(str(shard), framework="pt")
        except (SafetensorError, OSError) as e:  # a bad header, a truncated file
            raise SicogError(f"{shard}: cannot read the weights (safetensors): {e}") from None
        with f:
            yield list(f.keys()), f.get_tensor
        return
    import pickle

    import torch

    try:
        try:
            state = torch.load(shard, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (non-zip) format cannot be memory-mapped
            state = torch.load(shard, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as e:
        raise SicogError(f"{shard}: cannot read the weights (weights_only): {e}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SicogError(f"{shard}: not a state dict of tensors")
    try:
        yield list(state), state.__getitem__
    finally:
        del state


def our_name(key: str, expected: dict) -> str | None:
    """Our parameter name for one of theirs (None when it has no place)."""
    candidates = []
    if key == "lm_head.weight":
        candidates = ["lm_head.weight"]
    elif key.startswith("model.mm_projector."):
        candidates = ["model.multi_modal_projector." + key[len("model.mm_projector."):]]
    elif key.startswith("model.vision_tower.vision_tower.vision_model."):
        rest = key[len("model.vision_tower.vision_tower.vision_model."):]
        candidates = ["model.vision_tower." + rest, "model.vision_tower.vision_model." + rest]
    elif key.startswith("model.") and not key.startswith("model.vision_tower."):
        candidates = ["model.language_model." + key[len("model."):]]
    return next((c for c in candidates if c in expected), None)


def _query_count(shards: list[Path]) -> int | None:
    """The resampler's query count, read from the shape of their `query` tensor."""
    for shard in shards:
        with _open_shard(shard) as (names, get):
            if "model.mm_projector.query" in names:
                return int(get("model.mm_projector.query").shape[0])
    return None


def their_text_config(their: dict):
    """Their LM's settings as transformers parses them: `Qwen2Config.from_dict` on their config
    without its LLaVA keys (a 4.x top-level `rope_theta` becomes the 5.x `rope_parameters`)."""
    from transformers import Qwen2Config

    lm = {k: v for k, v in their.items() if not k.startswith(NOT_LM_KEYS)}
    return Qwen2Config.from_dict(lm)


def _target(cfg: ConvertUhdConfig, their: dict, queries: int | None):
    """(our config, tokenizer, expected {name: shape}) for their folder."""
    import torch
    from transformers import AutoConfig

    from sicog.config import ModelConfig, UhdSettings
    from sicog.model.assembly import load_lm_tokenizer
    from sicog.model.uhd.build import add_layout_tokens, register_uhd, uhd_config
    from sicog.model.uhd.modeling_uhd import SicogUhdForConditionalGeneration

    register_uhd()
    kind = their.get("mm_projector_type")
    if kind not in PROJECTOR_QUERIES:
        raise SicogError(f"{cfg.checkpoint}/config.json: key mm_projector_type is {kind!r}; only the UHD v1 "
                         f"resampler converts ({', '.join(PROJECTOR_QUERIES)})")
    select = their.get("mm_vision_select_feature", "patch")
    if select not in SELECT_FEATURES:
        raise SicogError(f"{cfg.checkpoint}/config.json: key mm_vision_select_feature is {select!r}; the uhd model "
                         f"takes {' or '.join(SELECT_FEATURES)}")
    text_config = their_text_config(their)
    vision = AutoConfig.from_pretrained(cfg.vision_tower)
    vision_config = getattr(vision, "vision_config", vision)
    if their.get("mm_hidden_size") not in (None, vision_config.hidden_size):
        raise SicogError(f"{cfg.checkpoint}/config.json: key mm_hidden_size is {their['mm_hidden_size']}, the "
                         f"tower in {cfg.vision_tower} is {vision_config.hidden_size} wide")
    tokenizer = load_lm_tokenizer(cfg.checkpoint)
    add_layout_tokens(tokenizer)
    text_config.vocab_size = max(text_config.vocab_size, len(tokenizer))
    queries = queries or PROJECTOR_QUERIES[kind]
    model_cfg = ModelConfig(arch="uhd", vision_feature_layer=int(their.get("mm_vision_select_layer", -2)),
                            uhd=UhdSettings(num_queries=queries))
    config = uhd_config(model_cfg, vision_config, text_config, tokenizer, queries)
    config.vision_feature_select = select
    config.resampler_box_rounding = cfg.box_rounding
    with torch.device("meta"):
        shell = SicogUhdForConditionalGeneration(config)
    return config, tokenizer, shell, {k: tuple(v.shape) for k, v in shell.state_dict().items()}


def _grow_rows(tensor, rows: int):
    """An embedding / output matrix grown to `rows` with the mean row (tokens their vocab lacked)."""
    import torch

    if tensor.shape[0] >= rows:
        return tensor
    extra = tensor.float().mean(0, keepdim=True).expand(rows - tensor.shape[0], -1).to(tensor.dtype)
    return torch.cat([tensor, extra])


def convert(cfg: ConvertUhdConfig) -> Path:
    from safetensors.torch import save_file
    from transformers.dynamic_module_utils import custom_object_save

    from sicog.model.uhd.build import make_uhd_processor, normalisation_of
    from sicog.utils.lock import check_finished, output_lock
    from sicog.utils.paths import check_outputs_apart

    src, out = Path(cfg.checkpoint), Path(cfg.out)
    check_outputs_apart({"--out": out}, {"--checkpoint": src, "--vision-tower": cfg.vision_tower})
    for flag, folder in (("--checkpoint", src), ("--vision-tower", Path(cfg.vision_tower))):
        if not folder.is_dir():
            raise SicogError(f"{flag} {folder}: folder not found")
    # the inputs by content (size + mtime of every file), not by path: a rewritten weight file
    # makes a rerun convert again (--overwrite), never keep the output of the old weights
    settings = {"checkpoint": str(src.resolve()), "checkpoint_files": model_files_fingerprint(src, every_file=True),
                "vision_tower_files": model_files_fingerprint(cfg.vision_tower, every_file=True),
                **{k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("checkpoint", "out", "overwrite")}}
    with output_lock(out):
        if out.exists() and check_finished(out, (_read_json(out / META, "meta") if (out / META).is_file() else {})
                                           .get("settings"), settings, out / META, cfg.overwrite):
            log.info("%s is already converted with these settings", out)
            return out
        their = _read_json(src / "config.json", "the model config")
        shards, filled, unplaced, unused = _their_shards(src), set(), [], []
        config, tokenizer, shell, expected = _target(cfg, their, _query_count(shards))
        ids = tokenizer.convert_tokens_to_ids
        with atomic_dir(out) as tmp:
            weight_map = {}
            for k, shard in enumerate(shards):
                tensors = {}
                with _open_shard(shard) as (names, get_tensor):
                    for key in names:
                        if key.startswith(UNUSED):
                            unused.append(key)
                            continue
                        name = our_name(key, expected)
                        if name is None:
                            unplaced.append(f"{shard.name}: {key}")
                            continue
                        tensor = get_tensor(key)
                        if name in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
                            tensor = _grow_rows(tensor, expected[name][0])
                        if name == "model.language_model.embed_tokens.weight":
                            tensor = tensor.clone()  # a memory-mapped .bin tensor is never written
                            for theirs, ours in ((cfg.row_token_id, ids("<uhd_row>")), (cfg.slice_token_id, ids("<uhd_slice>"))):
                                if not 0 <= theirs < tensor.shape[0]:
                                    raise SicogError(f"--row-token-id / --slice-token-id: {theirs} is outside their "
                                                     f"embedding table ({tensor.shape[0]} rows)")
                                tensor[ours] = tensor[theirs]
                        if tuple(tensor.shape) != expected[name]:
                            raise SicogError(f"{shard}: key {key} has shape {tuple(tensor.shape)}, our {name} needs "
                                             f"{expected[name]}")
                        tensors[name] = tensor.contiguous()
                        filled.add(name)
                if unplaced:
                    raise SicogError(f"{src}: cannot place {len(unplaced)} tensor(s) in the uhd model: "
                                     f"{', '.join(unplaced[:8])}")
                file = "model.safetensors" if len(shards) == 1 else f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
                save_file(tensors, str(tmp / file), metadata={"format": "pt"})
                weight_map.update({name: file for name in tensors})
                del tensors
            missing = sorted(set(expected) - filled)
            if missing:
                raise SicogError(f"{src}: no tensor for {len(missing)} of our weight(s): {', '.join(missing[:8])}")
            if len(shards) > 1:
                write_json(tmp / "model.safetensors.index.json", {"metadata": {}, "weight_map": weight_map})
            custom_object_save(shell, tmp, config=config)  # the code files + auto_map
            config.save_pretrained(tmp)
            mean, std = normalisation_of(cfg.vision_tower)
            vcfg = config.vision_config
            from sicog.config import ModelConfig

            make_uhd_processor(tokenizer, ModelConfig(arch="uhd"), vcfg.image_size, vcfg.patch_size,
                               config.query_side, mean, std).save_pretrained(tmp)
            _generation_config(src, tokenizer).save_pretrained(tmp)
            write_json(tmp / META, {"stage": "convert", "source": str(src), "settings": settings,
                                    "unused_tensors": unused, "complete": True})
    log.info("converted %s -> %s (%d tensors%s)", src, out, len(filled),
             f"; unused by the model: {', '.join(unused)}" if unused else "")
    return out


def _generation_config(src: Path, tokenizer):
    from transformers import GenerationConfig

    from sicog.model.assembly import default_generation_config

    try:
        gc = GenerationConfig.from_pretrained(src)
    except OSError:
        gc = default_generation_config(tokenizer)
    if gc.pad_token_id is None:
        gc.pad_token_id = tokenizer.pad_token_id
    return gc
