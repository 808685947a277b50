"""The steps of benchmarks/gpu_check.py: its synthetic inputs, how a step runs a sicog command, and
what each step reads back from the command's own outputs (see gpu_check.py for the whole story)."""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_throughput import QWEN2_VOCAB, SIZES, WORDS  # noqa: E402  (the one definition of the real shapes)

ENTRY = Path(__file__).resolve().with_name("gpu_check.py")
ENTRY_FLAG = "--sicog-entry"  # internal: `gpu_check.py --sicog-entry PEAK SICOG_ARGS...` runs `sicog SICOG_ARGS`
CONFIGS = {"llava": REPO / "configs/qwen2_7b/stage2_sft.yaml", "uhd": REPO / "configs/qwen2_7b_uhd/stage2_sft.yaml",
           "dpo": REPO / "configs/qwen2_7b/dpo.yaml"}
CONFIG_MAX_LENGTH = 4096  # data.max_length of those configs
ZERO2 = REPO / "configs/deepspeed/zero2.json"
CANDIDATES_PER_IMAGE = 4


@dataclass(frozen=True)
class Profile:
    """Model sizes and workload: real shapes on GPU, tiny ones for --cpu-smoke."""

    sizes: dict  # sicog.config.TinyModelConfig
    lm_vocab: int  # rows of the LM's embedding and head (the offline tokenizer has fewer: the rest are never targets)
    uhd_queries: int  # resampler tokens per slice
    max_length: int | None  # data.max_length; None: the stage configs' own
    long_words: tuple[int, int]  # words of a long (CoD-like) reply
    new_tokens: int  # sampling budget per candidate


REAL = Profile(SIZES["cuda"], QWEN2_VOCAB, 144, None, (200, 1200), 256)
SMOKE = Profile({"image_size": 64, "patch_size": 16, "vision_hidden_size": 32, "vision_layers": 1, "vision_heads": 2,
                 "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 128,
                 "max_position_embeddings": 1024, "vocab_size": 512}, 1024, 16, 256, (10, 40), 8)


class StepFailed(Exception):
    """A step's command failed; the message is the table's reason."""


@dataclass
class Check:
    """What the steps share: the flags, the profile, the folder being written, what earlier steps made."""

    args: argparse.Namespace
    profile: Profile
    root: Path
    inputs: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    checkpoints: dict = field(default_factory=dict)  # arch -> init checkpoint folder


# ----------------------------------------------------------------------------- inputs
def _picture(rng, width: int, height: int):
    """A smooth random picture (upsampled noise): it compresses like a photo, unlike pixel noise."""
    from PIL import Image

    return Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype="uint8")).resize((width, height), Image.BICUBIC)


def _words(rng, span: tuple[int, int]) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(*span)))) + "."


def _jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def write_inputs(root: Path, p: Profile, a: argparse.Namespace) -> dict:
    """Pictures of 3 x 2 slices (uhd slices them; llava centre-crops), a length-skewed training mixture
    (half short QA, half long CoD-like replies), sampling records, preference pairs and a multiple-choice TSV."""
    import numpy as np

    from sicog.data.formats import COD_PROMPT

    rng = np.random.default_rng(0)
    side = p.sizes["image_size"]
    (root / "img").mkdir(parents=True, exist_ok=True)
    for i in range(64):
        _picture(rng, 3 * side, 2 * side).save(root / "img" / f"{i}.jpg", quality=90)

    def turns(i, question, answer):
        return {"id": f"t{i}", "image": f"img/{i % 64}.jpg", "conversations": [
            {"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": answer}]}

    train = [turns(i, "Describe the image in detail, step by step.", _words(rng, p.long_words)) if i % 2 else
             turns(i, "How many circles are there?", f"There are {i % 6} circles.") for i in range(64)]
    sample = [{"id": f"s{i}", "image": f"img/{i % 64}.jpg", "conversations": [
        {"from": "human", "value": "<image>\n" + COD_PROMPT}]} for i in range(a.candidates // CANDIDATES_PER_IMAGE)]
    reply = (max(2, p.long_words[0] // 4), max(3, p.long_words[1] // 4))
    pairs = [{"id": f"p{i}", "image": f"img/{i % 64}.jpg", "prompt": "What is in the picture? Think step by step.",
              "chosen": _words(rng, reply), "rejected": "I cannot tell. " + _words(rng, reply),
              "source": "curated", "corruption": None} for i in range(2 * a.dpo_steps + 4)]
    files = {"images": str(root), "train": _jsonl(root / "train.jsonl", train),
             "sample": _jsonl(root / "sample.jsonl", sample), "pairs": _jsonl(root / "pairs.jsonl", pairs[4:]),
             "heldout": _jsonl(root / "heldout.jsonl", pairs[:4]), "benchmark": str(root / "benchmark.tsv")}
    with open(files["benchmark"], "w", encoding="utf-8") as fh:  # VLMEvalKit's layout (sicog.eval.mcq)
        fh.write("index\tquestion\tanswer\tcategory\tA\tB\tC\tD\timage\n")
        for i in range(a.questions):
            buf = io.BytesIO()
            _picture(rng, side, side).save(buf, format="JPEG", quality=90)
            fh.write(f"{i}\tWhich shape is the largest?\t{'ABCD'[i % 4]}\tsynthetic\tcircle\tsquare\tstar\ttriangle\t"
                     f"{base64.b64encode(buf.getvalue()).decode('ascii')}\n")
    return files


# ----------------------------------------------------------------------------- running a sicog command
def entry(peak_file: str, argv: list[str]) -> int:
    """`sicog ARGV` in this process, then its peak memory (sicog.stages.throughput) into
    `peak_file`.rank<RANK>.json."""
    import torch

    if not torch.cuda.is_available() and "LOCAL_RANK" in os.environ and importlib.util.find_spec("deepspeed"):
        # DeepSpeed's CPU backend compiles a shared-memory kernel at start-up (minutes) that only
        # inference_all_reduce uses, never training (as tests/stages/_sicog_rank.py does)
        importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    from sicog.cli import main
    from sicog.stages.throughput import peak_memory_gb

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        return main(argv)
    finally:
        Path(f"{peak_file}.rank{os.environ.get('RANK', '0')}.json").write_text(
            json.dumps({"peak_mem_gb": peak_memory_gb()}))


@contextlib.contextmanager
def output_to(log: Path):
    """This process's stdout and stderr into `log` for the block, at the file-descriptor level, so
    that every writer (logging handlers made earlier, warnings, progress bars, C code) lands there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(log, "a", encoding="utf-8") as fh:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            try:
                yield
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


def _in_process(argv: list[str], peak: Path) -> int:
    """`sicog ARGV` here (the step's output is already redirected to its log)."""
    import logging

    import torch

    try:
        return entry(str(peak), argv)
    except SystemExit as e:  # argparse
        return e.code if isinstance(e.code, int) else 1
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)  # sicog's INFO logging off again
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _subprocess(cmd: list[str], log: Path, timeout: float) -> int:
    """Run `cmd` in its own session, output to `log`; a timeout or Ctrl-C stops it with every process it started."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except BaseException:
            for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=wait)
                    break
            raise


def run_sicog(c: Check, step_dir: Path, argv: list[str], torchrun: bool = False) -> dict:
    """Run `sicog ARGV` for a step: in this process, in its own, or under `torchrun --nproc_per_node 1`.
    Returns the peak memory; raises StepFailed with the command's error message when it fails."""
    peak, log = step_dir / "peak", step_dir / "log.txt"
    if torchrun or c.args.launch == "process":
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1",
                    "--master_port", str(_free_port())] if torchrun else [sys.executable]
        rc = _subprocess([*launcher, str(ENTRY), ENTRY_FLAG, str(peak), *argv], log, c.args.step_timeout)
    else:
        print(f"$ sicog {shlex.join(argv)}", flush=True)  # (into the step's log)
        rc = _in_process(argv, peak)
    if rc != 0:
        raise StepFailed(f"exit {rc}: {error_line(log)}")
    return json.loads(Path(f"{peak}.rank0.json").read_text())


def error_line(log: Path) -> str:
    """The command's own error message (`sicog X: error: ...`), else the last exception line, else the last line."""
    lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    found = ([ln.split(": error: ", 1)[1] for ln in lines if re.match(r"sicog \w+: error: ", ln)]
             or [ln for ln in lines if re.match(r"[\w.]*(Error|Exception)\b", ln)] or lines[-1:] or ["no output"])
    return f"{found[-1][:300]} (see {log.parent.name}/log.txt)"


def drop_checkpoints(run_dir: Path, keep: bool) -> float:
    """Delete the checkpoint-N/ and final/ folders a stage wrote (unless `keep`); returns their size in GB."""
    dirs = [d for d in [*run_dir.glob("checkpoint-*"), run_dir / "final"] if d.is_dir()]
    size = sum(f.stat().st_size for d in dirs for f in d.rglob("*") if f.is_file()) / 1e9
    for d in dirs if not keep else []:
        shutil.rmtree(d)
    return size


def _count(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}K"


# ----------------------------------------------------------------------------- the steps
def step_env(c: Check, d: Path) -> dict:
    """Versions, the device, and whether flash-attention 2 and Liger can run (sicog.model.kernels)."""
    import torch

    from sicog.model.kernels import flash_attention_problem, liger_problem

    def version(dist):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(dist)
        return None

    env = {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": version("transformers"),
           "deepspeed": version("deepspeed"), "flash_attn": version("flash-attn") or version("flash_attn"),
           "liger_kernel": version("liger-kernel"), "cuda": torch.cuda.is_available(),
           "flash_attention_problem": flash_attention_problem(), "liger_problem": liger_problem()}
    if env["cuda"]:
        props = torch.cuda.get_device_properties(0)
        env.update(device=torch.cuda.get_device_name(0), memory_gb=round(props.total_memory / 1e9, 1),
                   capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                   bf16=torch.cuda.is_bf16_supported(), cuda_version=torch.version.cuda)
        where = f"{env['device']} ({env['memory_gb']} GB, sm {env['capability']}), bf16 {'on' if env['bf16'] else 'OFF'}"
    else:
        env.update(device="cpu", bf16=False)
        where = "CPU (--cpu-smoke), fp32" if c.args.cpu_smoke else "NO CUDA DEVICE"
    c.env = env
    print(json.dumps(env, indent=2))
    if not env["cuda"] and not c.args.cpu_smoke:
        raise StepFailed(f"torch {env['torch']} sees no CUDA device (--cpu-smoke runs the steps on CPU)")
    flash = (f"flash-attn {env['flash_attn']}" if env["flash_attention_problem"] is None
             else f"no flash-attn: {env['flash_attention_problem']}")
    liger = f"liger {env['liger_kernel']}" if env["liger_problem"] is None else f"no liger: {env['liger_problem']}"
    return {"figure": f"{where}; {flash}; {liger}", **env}


def step_build(arch: str) -> Callable:
    """A random-init checkpoint of the profile's shapes (sicog.model.build), in bf16 where the GPU has it."""
    def build(c: Check, d: Path) -> dict:
        import torch

        from sicog.config import ModelConfig, TinyModelConfig, UhdSettings
        from sicog.model.build import build_model
        from sicog.model.checkpoint import save_checkpoint

        p = c.profile
        dtype = torch.bfloat16 if c.env.get("bf16") else torch.float32
        cfg = ModelConfig(arch=arch, preset="tiny", tiny=TinyModelConfig(**p.sizes),
                          uhd=UhdSettings(num_queries=p.uhd_queries))
        model, processor = build_model(cfg, seed=0, dtype=dtype)
        model.resize_token_embeddings(p.lm_vocab, mean_resizing=False)  # the real LM head's rows
        params = sum(t.numel() for t in model.parameters())
        vision = sum(t.numel() for t in model.model.vision_tower.parameters())
        path = save_checkpoint(model, processor, d / "init", {"stage": "init", "seed": 0})
        del model
        gc.collect()
        c.checkpoints[arch] = str(path)
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9
        return {"figure": f"{_count(params)} parameters (vision {_count(vision)}), {size:.3g} GB "
                          f"{str(dtype).removeprefix('torch.')}", "parameters": params, "checkpoint_gb": size}
    return build


_STEP_LINE = re.compile(r"\] step (\d+)/\d+ .*?\| ([\d.]+) samples/s ([\d.]+) tokens/s ([\d.e+-]+) TFLOP/s"
                        r"(?: mfu ([\d.]+)%)? \| padding")


def steady_rates(log: Path) -> dict:
    """Median real tokens/s, TFLOP/s and MFU over the steps after the first, from sicog's throughput
    line (sicog.stages.throughput, logged every step with training.logging_steps=1)."""
    rows = [m.groups() for m in _STEP_LINE.finditer(log.read_text(encoding="utf-8", errors="replace"))]
    rows = [r for r in rows if int(r[0]) > 1] or rows
    if not rows:
        return {}
    out = {"steady_steps": len(rows), "steady_tokens_per_s": statistics.median(float(r[2]) for r in rows),
           "steady_tflops_per_s": statistics.median(float(r[3]) for r in rows)}
    if all(r[4] is not None for r in rows):
        out["steady_mfu"] = statistics.median(float(r[4]) for r in rows) / 100
    return out


def step_train(arch: str, packed: bool = False, deepspeed: bool = False, dpo: bool = False) -> Callable:
    """`sicog train` (or `sicog dpo`) of the real stage config with only model, data, step budget,
    kernels and DeepSpeed overridden; the figures from train_summary.json and the step lines."""
    def train(c: Check, d: Path) -> dict:
        a, p = c.args, c.profile
        run = d / "run"
        sets = {"model.checkpoint": c.checkpoints[arch], "model.attn_implementation": a.attn,
                "data.sources": [{"path": c.inputs["pairs" if dpo else "train"], "image_folder": c.inputs["images"]}],
                "training.output_dir": str(run), "training.max_steps": a.dpo_steps if dpo else a.train_steps,
                "training.save_steps": 10 ** 6, "training.logging_steps": 1, "training.warmup_ratio": 0.0,
                "training.deepspeed": str(a.deepspeed_config) if deepspeed else None}
        if p.max_length:
            sets["data.max_length"] = p.max_length
        if dpo:
            sets["dpo.heldout"] = c.inputs["heldout"]
        else:
            sets["training.liger_kernels"] = True
        if packed:  # flash-attention skips across samples; SDPA's packed mask is dense: keep packs short
            max_length = p.max_length or CONFIG_MAX_LENGTH
            varlen = a.attn in ("auto", "flash_attention_2") and c.env.get("flash_attention_problem") is None
            sets.update({"data.packing": True, "data.packing_tokens": 4 * max_length if varlen else max_length})
        argv = ["dpo" if dpo else "train", str(CONFIGS["dpo" if dpo else arch])]
        for key, value in sets.items():
            argv += ["--set", f"{key}={json.dumps(value)}"]
        peak = run_sicog(c, d, argv, torchrun=deepspeed)
        s = json.loads((run / "train_summary.json").read_text())
        steady = steady_rates(d / "log.txt")
        saved = drop_checkpoints(run, a.keep_checkpoints)
        tokens = steady.get("steady_tokens_per_s", s["tokens_per_s"])
        mfu = steady.get("steady_mfu", s.get("mfu"))
        figure = (f"{s['steps']} steps, {tokens:,.0f} tok/s, MFU {'-' if mfu is None else f'{mfu:.1%}'}, "
                  f"peak {peak['peak_mem_gb']:.1f} GB, padding {s['padding_share']:.0%}")
        if dpo:
            before, after = (s.get(k, {}).get("rewards/accuracy") for k in ("heldout_before", "heldout_after"))
            figure += f", held-out reward accuracy {before} -> {after}"
        if deepspeed:
            figure += f", {Path(a.deepspeed_config).name}"
        return {"figure": figure, **peak, **steady, "checkpoints_gb": saved,
                "train_summary": {k: v for k, v in s.items() if k != "log_history"}}
    return train


def step_sample(arch: str) -> Callable:
    """`sicog sample --mode cod`: --candidates candidates, CANDIDATES_PER_IMAGE per image."""
    def sample(c: Check, d: Path) -> dict:
        out = d / "candidates.jsonl"
        argv = ["sample", "--model", c.checkpoints[arch], "--data", c.inputs["sample"], "--image-folder",
                c.inputs["images"], "--out", str(out), "--mode", "cod", "--n", str(CANDIDATES_PER_IMAGE),
                "--max-new-tokens", str(c.profile.new_tokens), "--batch-size", "16", "--seed", "0", "--no-progress"]
        peak = run_sicog(c, d, argv)
        run = json.loads(Path(f"{out}.summary.json").read_text())["this_run"]
        return {"figure": f"{run['candidates']} candidates, {run['tokens_per_s']:,.0f} tok/s, "
                          f"{run['candidates_per_s']:.1f} cand/s, peak {peak['peak_mem_gb']:.1f} GB", **peak, **run}
    return sample


def step_evaluate(c: Check, d: Path) -> dict:
    """`sicog evaluate` on --questions multiple-choice questions, by option likelihood and by letter."""
    argv = ["evaluate", "--model", c.checkpoints["llava"], "--benchmark", c.inputs["benchmark"], "--out",
            str(d / "eval"), "--mcq-scoring", "likelihood,generate", "--captions", "off", "--no-progress"]
    peak = run_sicog(c, d, argv)
    s = json.loads((d / "eval" / "summary.json").read_text())
    accuracy = {way: m["accuracy"] for way, m in s["mcq_by_scoring"].items()}
    return {"figure": f"{s['mcq']['n']} questions, {s['mcq']['n'] / max(s['seconds'], 1e-3):.1f} q/s, accuracy "
                      + ", ".join(f"{v:.0%} ({k})" for k, v in accuracy.items()) + f", peak {peak['peak_mem_gb']:.1f} GB",
            **peak, "accuracy": accuracy, "eval_seconds": s["seconds"]}


#: name -> (function, the steps it needs), in the table's order; a build's checkpoint is deleted after
#: the last step that needs it (unless --keep-checkpoints)
STEPS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "env": (step_env, ()),
    "build-llava": (step_build("llava"), ("env",)),
    "train-llava-padded": (step_train("llava"), ("build-llava",)),
    "train-llava-packed": (step_train("llava", packed=True), ("build-llava",)),
    "train-deepspeed": (step_train("llava", deepspeed=True), ("build-llava",)),
    "sample-llava": (step_sample("llava"), ("build-llava",)),
    "evaluate-llava": (step_evaluate, ("build-llava",)),
    "dpo-llava": (step_train("llava", dpo=True), ("build-llava",)),
    "build-uhd": (step_build("uhd"), ("env",)),
    "train-uhd": (step_train("uhd"), ("build-uhd",)),
    "train-uhd-packed": (step_train("uhd", packed=True), ("build-uhd",)),
    "sample-uhd": (step_sample("uhd"), ("build-uhd",)),
}
