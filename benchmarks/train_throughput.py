"""Training throughput: padded vs packed batches (`data.packing`) of the same samples.

A length-skewed mixture like stage 1.5's: half short visual QA (an image, a question, a few
words of answer), half long Chain-of-Description captions (an image and hundreds of tokens).
Each run is a real `sicog train` stage (`train_stage`) over one epoch of the same samples from
the same random-init checkpoint, in one process; model building and the final save are not
timed (the rates come from train_summary.json). Padded runs pad each batch to its longest
sample: in random order (`--padded-order random`, the default, what a plain padded trainer
does) or length-grouped (sicog's `data.group_by_length`, which already removes much padding).

Throughput is real (non-pad) tokens/s. MFU is model FLOPs/s (`sicog.model.flops`: vision tower,
projector, LM, attention, per real token) over the device's peak: the spec-sheet dense bf16
peak on a GPU; on CPU the fp32 matmul rate measured here just before the runs.

    python benchmarks/train_throughput.py                   # CPU: small model, ~3 minutes
    python benchmarks/train_throughput.py --device cuda     # CLIP-L/336 + 1.5B-shaped Qwen2, bf16
    python benchmarks/train_throughput.py --device cuda --liger --attn flash_attention_2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# CPU: a small model that finishes in minutes. CUDA: CLIP-L/336 and Qwen2-1.5B's shapes.
SIZES = {
    "cpu": {"image_size": 64, "patch_size": 8, "vision_hidden_size": 64, "vision_layers": 2, "vision_heads": 2,
            "hidden_size": 128, "num_layers": 4, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 384,
            "max_position_embeddings": 4096, "vocab_size": 1024},
    "cuda": {"image_size": 336, "patch_size": 14, "vision_hidden_size": 1024, "vision_layers": 24,
             "vision_heads": 16, "hidden_size": 1536, "num_layers": 28, "num_heads": 12, "num_kv_heads": 2,
             "intermediate_size": 8960, "max_position_embeddings": 32768, "vocab_size": 4096},
}
QWEN2_VOCAB = 151936  # the LM head of a real 1.5B model: the embedding is resized to it on CUDA
WORDS = ("red green blue yellow circle square triangle star small large left right top bottom near far "
         "above below the a of in on and with there is are one two three four five shape colour").split()


def write_mixture(root: Path, n: int, long_words: tuple[int, int], seed: int) -> Path:
    """n records, alternating short QA and long CoD, each with its own noise image."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        if i % 2:
            words = rng.choice(WORDS, size=int(rng.integers(*long_words)))
            turns = [("Describe the image in detail, step by step.", " ".join(words) + ".")]
        else:
            turns = [("How many circles are there?", f"There are {int(rng.integers(0, 6))} circles.")]
        conv = [{"from": "human", "value": "<image>\n" + turns[0][0]}, {"from": "gpt", "value": turns[0][1]}]
        lines.append(json.dumps({"id": f"s{i}", "image": f"img/{i}.png", "conversations": conv}))
    path = root / "mixture.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_checkpoint(root: Path, device: str) -> Path:
    import torch

    from sicog.config import ModelConfig, TinyModelConfig
    from sicog.model.build import build_model
    from sicog.model.checkpoint import save_checkpoint

    model, processor = build_model(ModelConfig(preset="tiny", tiny=TinyModelConfig(**SIZES[device])), seed=0,
                                   dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    if device == "cuda":
        model.resize_token_embeddings(QWEN2_VOCAB)
    return save_checkpoint(model, processor, root / "init", {"stage": "init"})


def cpu_matmul_flops(seconds: float = 1.0) -> float:
    """The fp32 matmul rate of this CPU now (FLOP/s), the MFU denominator on CPU."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 1024 ** 3 * n / (time.perf_counter() - t0)


def run_stage(root: Path, name: str, ckpt: Path, data: Path, args, overrides: dict) -> dict:
    from sicog.config import TrainConfig, config_from_mapping
    from sicog.stages.train import train_stage

    mapping = {
        "stage": name,
        "model": {"checkpoint": str(ckpt), "attn_implementation": args.attn},
        "data": {"sources": [{"path": str(data), "image_folder": str(data.parent)}], "max_length": args.max_length,
                 "group_by_length": False},
        "training": {"output_dir": str(root / name), "per_device_train_batch_size": args.batch_size,
                     "num_train_epochs": 1.0, "learning_rate": 1e-5, "warmup_ratio": 0.0, "logging_steps": 10 ** 6,
                     "save_steps": 10 ** 6, "seed": 0, "liger_kernels": args.liger,
                     "gradient_checkpointing": args.gradient_checkpointing},
    }
    for key, value in overrides.items():
        section, field = key.split(".")
        mapping[section][field] = value
    train_stage(config_from_mapping(TrainConfig, mapping, name))
    return json.loads((root / name / "train_summary.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    p.add_argument("--samples", type=int, default=None, help="samples in the mixture (cpu 96, cuda 256)")
    p.add_argument("--batch-size", type=int, default=4, help="padded: samples per device batch (default 4)")
    p.add_argument("--max-length", type=int, default=None, help="data.max_length (cpu 1024, cuda 4096)")
    p.add_argument("--packing-tokens", type=int, default=None,
                   help="token budget of a pack (default: max_length with SDPA, whose packed mask is dense; "
                        "batch-size x max_length with flash-attention, which skips across samples)")
    p.add_argument("--padded-order", choices=("random", "grouped"), default="random",
                   help="padded batches in random order or length-grouped (data.group_by_length)")
    p.add_argument("--attn", default="auto", help="model.attn_implementation (auto, sdpa, flash_attention_2)")
    p.add_argument("--liger", action="store_true", help="training.liger_kernels: true")
    p.add_argument("--gradient-checkpointing", action="store_true", help="training.gradient_checkpointing")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (cpu default 1: a shared machine's other load then slows both runs "
                        "alike instead of stalling every parallel op)")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch starts
    args.samples = args.samples or (96 if args.device == "cpu" else 256)
    args.max_length = args.max_length or (1024 if args.device == "cpu" else 4096)
    long_words = (250, 700) if args.device == "cpu" else (600, 2400)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from sicog.model.kernels import flash_attention_problem

    torch.manual_seed(0)
    if args.device == "cpu":
        torch.set_num_threads(args.threads or 1)
    elif args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        data = write_mixture(root / "data", args.samples, long_words, seed=0)
        ckpt = make_checkpoint(root, args.device)
        varlen = args.attn in ("auto", "flash_attention_2") and flash_attention_problem() is None
        budget = args.packing_tokens or (args.batch_size * args.max_length if varlen else args.max_length)
        peak = None
        if args.device == "cpu":
            peak = cpu_matmul_flops()
        results = {
            "padded": run_stage(root, "padded", ckpt, data, args,
                                {"data.group_by_length": args.padded_order == "grouped"}),
            "packed": run_stage(root, "packed", ckpt, data, args,
                                {"data.packing": True, "data.packing_tokens": budget}),
        }
    print(f"{args.samples} samples (half short QA, half long CoD), device {args.device}, "
          f"padded batch {args.batch_size} ({args.padded_order} order), pack budget {budget} tokens"
          + (f", CPU fp32 matmul peak {peak / 1e9:.1f} GFLOP/s" if peak else ""))
    for name, s in results.items():
        mfu = s.get("mfu", s["tflops_per_s"] * 1e12 / peak if peak else float("nan"))
        print(f"{name:>6}: {s['tokens_per_s']:9.0f} real tokens/s  {s['samples_per_s']:7.2f} samples/s  "
              f"MFU {mfu:6.1%}  padding {s['padding_share']:5.1%}  data {s['data_share']:5.1%}  "
              f"{s['steps']} steps in {s['seconds']:.1f} s  peak mem {s['peak_mem_gb']:.2f} GB")
    ratio = results["packed"]["tokens_per_s"] / results["padded"]["tokens_per_s"]
    print(f"packed/padded real-token throughput: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
