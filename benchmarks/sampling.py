"""Candidate sampling speed: `sicog sample` (hf backend) vs the paper-style batch-1 loop, or with
`--backend vllm` `sicog sample` through a vLLM server (`sicog serve`) vs its hf backend.

Both sides use the same checkpoint, the same images and prompt, N candidates per image, the same
sampling settings and the same `max_new_tokens`, in the same process with the same torch thread
count; model loading is not timed. The paper-style loop is what the authors' generation script
does: stock transformers, one image at a time, one `generate` call per candidate.

A random-init tiny model rarely emits EOS, so both sides usually generate the full
`max_new_tokens` for every candidate: the same token budget, a fair comparison (the token counts
are printed so this can be checked).

    python benchmarks/sampling.py                      # tiny random-init checkpoint, N=6
    python benchmarks/sampling.py --model CKPT --images 32 --max-new-tokens 64
    sicog serve CKPT --port 8000 &    # then, once it answers:
    python benchmarks/sampling.py --backend vllm --model CKPT --api-base http://127.0.0.1:8000/v1

With --backend vllm the server serves --model (the same folder, so the same weights); its time is
the wall time of `sicog sample --backend openai` (requests, image upload and the server's work),
the hf side's is its generation time in this process. The server's own threads are not limited
by --threads; `--threads 1,2` measures the hf side at each count in every round (a row each; the
best counts for the ratio), since which is faster depends on the model and the machine's load.
The load average is printed and saved before and after: quote figures only from a run that
started on an idle machine.
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
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sicog.data.formats import COD_PROMPT  # noqa: E402
from sicog.stages.sampling.runner import SampleConfig, run_sampling  # noqa: E402


def write_inputs(root: Path, n_images: int, size: int, seed: int) -> Path:
    """n_images noise images and one LLaVA record per image (mode cod needs no question)."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n_images):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        lines.append(json.dumps({"id": f"b{i}", "image": f"img/{i}.png",
                                 "conversations": [{"from": "human", "value": "<image>\n" + COD_PROMPT}]}))
    data = root / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data


def paper_style_loop(model_path: str, data: Path, n: int, temperature: float, top_p: float,
                     max_new_tokens: int) -> dict:
    """Stock transformers, batch 1, one generate call per candidate (the authors' loop)."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(model_path).eval()
    processor = AutoProcessor.from_pretrained(model_path)
    records = [json.loads(line) for line in data.read_text().splitlines()]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": COD_PROMPT}]}],
        add_generation_prompt=True, tokenize=False)
    eos = model.generation_config.eos_token_id
    tokens = candidates = 0
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for rec in records:
            image = Image.open(data.parent / rec["image"]).convert("RGB")
            inputs = processor(images=image, text=prompt, return_tensors="pt")
            for _ in range(n):
                out = model.generate(**inputs, do_sample=True, temperature=temperature, top_p=top_p,
                                     top_k=0, num_beams=1, max_new_tokens=max_new_tokens, use_cache=True)
                gen = out[0, inputs["input_ids"].shape[1]:].tolist()
                tokens += next((k + 1 for k, t in enumerate(gen) if t == eos), len(gen))
                candidates += 1
    seconds = time.perf_counter() - t0
    return {"candidates": candidates, "tokens": tokens, "seconds": seconds}


def sicog_sample(model_path: str, data: Path, out: Path, n: int, temperature: float, top_p: float,
                 max_new_tokens: int, batch_size: int) -> dict:
    """`sicog sample --mode cod` through its own entry (run_sampling); generation time only."""
    summary = run_sampling(SampleConfig(
        model=model_path, data=str(data), out=str(out), mode="cod", n=n, image_folder=str(data.parent),
        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size,
        progress=False, device="cpu", dtype="float32"))
    run = summary["this_run"]
    assert summary["written"] == summary["items"], "sicog sample lost records"
    return {"candidates": run["candidates"], "tokens": run["tokens"], "seconds": run["seconds"]}


def sicog_sample_served(model_path: str, data: Path, out: Path, n: int, temperature: float, top_p: float,
                        max_new_tokens: int, api_base: str, served_name: str, concurrency: int) -> dict:
    """`sicog sample --mode cod --backend openai` against a vLLM server of the same checkpoint."""
    summary = run_sampling(SampleConfig(
        model=served_name, data=str(data), out=str(out), mode="cod", n=n, image_folder=str(data.parent),
        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, backend="openai",
        api_base=api_base, concurrency=concurrency, progress=False))
    run = summary["this_run"]
    assert summary["written"] == summary["items"], "sicog sample lost records"
    return {"candidates": run["candidates"], "tokens": run["tokens"], "seconds": run["seconds"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint folder (default: a fresh tiny random-init checkpoint)")
    p.add_argument("--images", type=int, default=32, help="number of images")
    p.add_argument("--image-size", type=int, default=64, help="side of the square test images")
    p.add_argument("--n", type=int, default=6, help="candidates per image")
    p.add_argument("--max-new-tokens", type=int, default=32, help="token budget per candidate")
    p.add_argument("--batch-size", type=int, default=32, help="sicog sample --batch-size (prompts per generate call)")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--threads", default="1",
                   help="torch threads for both sides (0: torch default). 1 by default: on a shared "
                        "2-core machine two threads spin-wait against other jobs and the timings "
                        "turn to noise. With --backend vllm a comma list (e.g. 1,2) measures the hf "
                        "side at each count")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds, alternating which side goes first; the best time of each side counts")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--backend", choices=("hf", "vllm"), default="hf",
                   help="hf: sicog sample's hf backend vs the paper-style loop; vllm: sicog sample through the "
                        "vLLM server at --api-base vs its hf backend")
    p.add_argument("--api-base", help="--backend vllm: the server, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--served-model-name", help="--backend vllm: the served name (default: --model's folder name)")
    p.add_argument("--concurrency", type=int, default=8, help="--backend vllm: requests in flight")
    args = p.parse_args()
    if args.backend == "vllm" and not (args.api_base and args.model):
        p.error("--backend vllm needs --api-base and --model (the folder the server serves)")
    try:
        threads = [int(t) for t in str(args.threads).split(",")]
    except ValueError:
        p.error(f"--threads: a number or a comma list of numbers, got {args.threads!r}")
    if any(t < 0 for t in threads) or (len(threads) > 1 and args.backend != "vllm"):
        p.error("--threads: counts >= 0; a list only with --backend vllm")
    threads = [t or torch.get_num_threads() for t in threads]  # 0: torch's default
    threads = list(dict.fromkeys(threads))
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(threads[0])

    # the two sides' names in the JSON: "hf" and "vllm" with --backend vllm, else "sicog" and "paper_loop"
    names = ({"ours": "hf", "paper": "vllm"} if args.backend == "vllm"
             else {"ours": "sicog", "paper": "paper_loop"})
    load_before = os.getloadavg()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="sicog-bench-") as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            from sicog.model.tiny import make_tiny_checkpoint

            model = str(make_tiny_checkpoint(tmp / "tiny", seed=0))
        data = write_inputs(tmp / "inputs", args.images, args.image_size, seed=0)  # outputs stay outside it
        common = dict(n=args.n, temperature=args.temperature, top_p=args.top_p,
                      max_new_tokens=args.max_new_tokens)
        ours = paper = None  # with --backend vllm, `paper` holds the served side
        ours_by_threads = {}  # the hf side's best per torch thread count
        for r in range(args.repeats):
            # Alternate the order so that a burst of load on the machine hits both sides alike.
            order = ("ours", "paper") if r % 2 == 0 else ("paper", "ours")
            for side in order:
                if side == "ours":
                    for t in (threads if r % 2 == 0 else threads[::-1]):
                        torch.set_num_threads(t)
                        res = sicog_sample(model, data, tmp / f"cands{r}_{t}.jsonl",
                                           batch_size=args.batch_size, **common)
                        res["threads"] = t
                        best = ours_by_threads.get(t)
                        ours_by_threads[t] = res if best is None or res["seconds"] < best["seconds"] else best
                        ours = res if ours is None or res["seconds"] < ours["seconds"] else ours
                        rounds.append({"round": r + 1, "side": names[side], **res})
                        print(f"round {r + 1} {names[side]} (threads {t}): {res['candidates']} candidates, "
                              f"{res['tokens']} tokens in {res['seconds']:.2f}s", file=sys.stderr)
                    continue
                if args.backend == "vllm":
                    res = sicog_sample_served(model, data, tmp / f"served{r}.jsonl", api_base=args.api_base,
                                              served_name=args.served_model_name or Path(model).name,
                                              concurrency=args.concurrency, **common)
                    paper = res if paper is None or res["seconds"] < paper["seconds"] else paper
                else:
                    res = paper_style_loop(model, data, **common)
                    paper = res if paper is None or res["seconds"] < paper["seconds"] else paper
                rounds.append({"round": r + 1, "side": names[side], **res})
                print(f"round {r + 1} {names[side]}: {res['candidates']} candidates, {res['tokens']} tokens "
                      f"in {res['seconds']:.2f}s", file=sys.stderr)

    load_after = os.getloadavg()
    other = "sicog sample (vllm)" if args.backend == "vllm" else "paper-style loop"
    if len(threads) > 1:
        rows = {f"sicog sample (hf, {t} thr)": ours_by_threads[t] for t in threads}
    else:
        rows = {"sicog sample (hf)": ours}
    rows[other] = paper
    served = f", openai concurrency {args.concurrency}" if args.backend == "vllm" else ""
    print(f"{args.images} images x N={args.n}, max_new_tokens={args.max_new_tokens}, "
          f"torch threads={','.join(map(str, threads))}, batch size {args.batch_size}{served}, "
          f"best of {args.repeats} alternating rounds")
    print(f"load average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)} on {os.cpu_count()} CPUs")
    width = max(20, *map(len, rows))
    print(f"{'':{width}s} {'candidates':>10s} {'tokens':>8s} {'seconds':>8s} {'cand/s':>8s} {'tok/s':>9s}")
    for r in [*ours_by_threads.values(), paper]:
        r["candidates_per_s"] = r["candidates"] / r["seconds"]
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
    for name, r in rows.items():
        print(f"{name:{width}s} {r['candidates']:10d} {r['tokens']:8d} {r['seconds']:8.2f} "
              f"{r['candidates_per_s']:8.1f} {r['tokens_per_s']:9.1f}")
    budget = args.images * args.n * args.max_new_tokens
    print(f"token budget {budget}: sicog (hf) generated {ours['tokens']}, {other} {paper['tokens']} "
          "(a random-init model rarely stops early, so both usually use the full budget; a trained one "
          "may stop at EOS: compare tokens/s)")
    ratio = ours["candidates_per_s"] / paper["candidates_per_s"]
    tok_ratio = ours["tokens_per_s"] / paper["tokens_per_s"]
    if args.backend == "vllm":
        ratio, tok_ratio = 1 / ratio, 1 / tok_ratio
        of = f" (its best: {ours['threads']} torch threads)" if len(threads) > 1 else ""
        print(f"vllm over hf{of}: {ratio:.1f}x candidates/s, {tok_ratio:.1f}x tokens/s")
    else:
        print(f"speed-up: {ratio:.1f}x candidates/s, {tok_ratio:.1f}x tokens/s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "args": vars(args), names["ours"]: ours, names["paper"]: paper,
            "ratio_candidates": ratio, "ratio_tokens": tok_ratio,
            f"{names['ours']}_by_threads": {str(t): ours_by_threads[t] for t in threads},
            "torch_threads": threads, "cpus": os.cpu_count(),
            "loadavg_before": load_before, "loadavg_after": load_after, "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
