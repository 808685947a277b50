"""Can vLLM serve this model? Shape checks that run before anything is loaded.

vLLM starts a server for a model whose attention its kernels cannot run and only fails on the
first request (the CPU build's paged attention has a fixed list of head sizes). These checks
name the problem up front: `sicog serve` refuses such a checkpoint (exit 2), `sicog train` warns
when it is about to train one. They read config.json files or `TinyModelConfig`, never weights.
"""

from __future__ import annotations

import json
from pathlib import Path

#: head sizes the CPU build of vLLM 0.32 runs (vllm/v1/attention/backends/cpu_attn.py,
#: `CPUAttentionBackend.get_supported_head_sizes`); other builds (CUDA) take more
VLLM_CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
#: model types the stock vLLM serves for a checkpoint (ours: `llava`; `sicog_uhd` needs the plugin)
VLLM_MODEL_TYPES = ("llava",)
#: vision towers sicog's vLLM plugin runs for `sicog_uhd` (sicog/model/vllm_uhd/uhd_model.py)
UHD_PLUGIN_TOWERS = ("clip_vision_model",)


def head_problems(hidden_size: int, num_heads: int, num_kv_heads: int | None = None,
                  head_dim: int | None = None, where: str = "the language model") -> list[str]:
    """What keeps vLLM's CPU attention from running an LM of these sizes (empty: nothing)."""
    problems = []
    if head_dim is None:
        if num_heads < 1 or hidden_size % num_heads:
            return [f"{where}: hidden size {hidden_size} is not a multiple of its {num_heads} attention heads"]
        head_dim = hidden_size // num_heads
    if head_dim not in VLLM_CPU_HEAD_SIZES:
        problems.append(f"{where}: attention head size {head_dim} (hidden {hidden_size} / {num_heads} heads) is not "
                        f"one vLLM's CPU attention runs ({', '.join(map(str, VLLM_CPU_HEAD_SIZES))}); "
                        "change the number of heads")
    if num_kv_heads is not None and (num_kv_heads < 1 or num_heads % num_kv_heads):
        problems.append(f"{where}: {num_heads} attention heads are not a multiple of its {num_kv_heads} key/value heads")
    return problems


def text_config_problems(text_config: dict, where: str = "the language model") -> list[str]:
    """`head_problems` of a config.json's text_config (a dict)."""
    try:
        hidden, heads = int(text_config["hidden_size"]), int(text_config["num_attention_heads"])
    except (KeyError, TypeError, ValueError):
        return [f"{where}: config has no hidden_size / num_attention_heads"]
    kv = text_config.get("num_key_value_heads")
    head_dim = text_config.get("head_dim")
    return head_problems(hidden, heads, int(kv) if kv else None, int(head_dim) if head_dim else None, where)


def checkpoint_serving_problems(path, plugin_types: tuple[str, ...] = ()) -> list[str]:
    """What keeps vLLM from serving the checkpoint folder `path` (empty: nothing found).
    `plugin_types`: model types a loaded vLLM plugin adds (sicog's `sicog_uhd`)."""
    try:
        config = json.loads(Path(path, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [f"{path}: no readable config.json"]
    model_type = config.get("model_type")
    problems = []
    if model_type not in (*VLLM_MODEL_TYPES, *plugin_types):
        extra = (" (arch uhd: sicog's vLLM plugin is not installed in the vLLM venv; `bash scripts/vllm_env.sh` "
                 "installs it, docs/serving.md)") if model_type == "sicog_uhd" else ""
        problems.append(f"{path}: model_type {model_type!r} is not one vLLM serves{extra}")
    if model_type == "sicog_uhd":
        vision_type = (config.get("vision_config") or {}).get("model_type")
        if vision_type not in UHD_PLUGIN_TOWERS:
            problems.append(f"{path}: vision_config model_type {vision_type!r}: sicog's vLLM plugin runs CLIP towers "
                            "only (the hf backend samples this checkpoint: sicog sample --backend hf)")
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    return problems + text_config_problems(text, f"{path}: text_config")


def model_config_problems(cfg) -> list[str]:
    """vLLM problems of a stage's `model:` section (sicog.config.ModelConfig) before it is built:
    the tiny preset's sizes, a checkpoint's or a language-model folder's config.json."""
    if cfg.preset == "tiny":
        t = cfg.tiny
        return head_problems(t.hidden_size, t.num_heads, t.num_kv_heads, where="model.tiny")
    folder = cfg.checkpoint or cfg.language_model
    if not folder or not Path(folder, "config.json").is_file():
        return []
    try:
        config = json.loads(Path(folder, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    key = "model.checkpoint" if cfg.checkpoint else "model.language_model"
    return text_config_problems(text, f"{key} ({folder})")


#: the name of sicog's entry point in vLLM's plugin group (`vllm.general_plugins`)
VLLM_PLUGIN_NAME = "sicog_uhd"


def plugin_model_types(python: str) -> tuple[str, ...]:
    """Model types the vLLM venv of interpreter `python` serves through sicog's plugin: ("sicog_uhd",)
    when the plugin's entry point is installed there, else ()."""
    import subprocess

    probe = ("from importlib.metadata import entry_points; "
             "print(' '.join(e.name for e in entry_points(group='vllm.general_plugins')))")
    try:
        names = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return ()
    return ("sicog_uhd",) if VLLM_PLUGIN_NAME in names else ()
