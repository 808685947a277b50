"""`sicog sample`: step 2 of SICOG - sample N candidate captions / CoT answers per input item.

The work is done by sicog.stages.sampling (items, runner, hf and openai backends); this module
holds the command-line interface.
"""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Step 2: sample N candidates per record (CoD / caption / CoT / direct / conv prompts).

Input: LLaVA records (.json list or .jsonl; answers optional). Output: one JSONL line per
(record, corruption) with id, image, prompt, mode, candidates, corruption, meta. Corrupted
copies get the id '<record id>#<corruption>' (list 'none' in --corruption to also sample the
clean image under the plain id).

Resumable and exactly-once: run under `torchrun --nproc_per_node K -m sicog sample ...` to
shard records over K ranks; finished records go to OUT.parts/ as they complete, a re-run of the
same command continues where it stopped, and OUT (plus OUT.summary.json) appears atomically
when every record is done. Under torchrun spell --n as --num-candidates (torchrun's own parser
rejects "--n" as an ambiguous abbreviation of its flags).
"""

MODES = ("cod", "caption", "cot", "direct", "conv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `sicog sample` (issue 4)."""
    p.add_argument("--model", required=True,
                   help="checkpoint folder (hf backend) or the served model name (openai backend)")
    p.add_argument("--data", required=True, help="input records, LLaVA .json or .jsonl")
    p.add_argument("--image-folder", default=None, help="folder the records' image paths are relative to")
    p.add_argument("--out", required=True, help="output candidates .jsonl (written atomically)")
    p.add_argument("--mode", required=True, choices=MODES,
                   help="cod: CoD caption prompt; caption: direct detailed caption; cot: the record's "
                        "question, step by step; direct: the record's question, short answer; conv: "
                        "the record's own human turn")
    # --num-candidates is the same flag: under torchrun, Python 3.11's argparse rejects "--n" as an
    # ambiguous prefix of torchrun's own --nnodes/--nproc-per-node before it reaches sicog.
    p.add_argument("--n", "--num-candidates", dest="n", type=int, default=6,
                   help="candidates per item (paper: 6); spell it --num-candidates under torchrun")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature; 0 = greedy")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling threshold")
    p.add_argument("--top-k", type=int, default=0, help="top-k cut (0: off, as in the paper)")
    p.add_argument("--num-beams", type=int, default=1, help="beams (1: sampling / greedy)")
    p.add_argument("--max-new-tokens", type=int, default=1200, help="generation budget per candidate")
    p.add_argument("--batch-size", type=int, default=32,
                   help="prompts per generate call (hf backend; each gives N sequences)")
    p.add_argument("--corruption", default=None,
                   help="comma-separated image corruptions: gaussian_blur, color_jitter, mirror_rotate, "
                        "mask (aliases: blur, jitter, rotate), and 'none' for the clean image")
    p.add_argument("--seed", type=int, default=0, help="run seed (sampling and corruptions)")
    p.add_argument("--backend", choices=("hf", "openai"), default="hf",
                   help="hf: in-process transformers; openai: an OpenAI-compatible server (vLLM, SGLang)")
    p.add_argument("--api-base", default=None, help="openai backend: base URL, e.g. http://host:8000/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="openai backend: NAME of the environment variable holding the API key "
                        "(the key itself is never passed on the command line nor logged)")
    p.add_argument("--concurrency", type=int, default=8, help="openai backend: requests in flight")
    p.add_argument("--max-retries", type=int, default=6,
                   help="openai backend: retries on 429 / 5xx / connection errors (exponential backoff)")
    p.add_argument("--retry-delay", type=float, default=1.0,
                   help="openai backend: first backoff in seconds (doubles per retry, capped at 60)")
    p.add_argument("--request-timeout", type=float, default=600.0, help="openai backend: seconds per request")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="a missing/unreadable image: raise (default) or skip it, counted in the summary")
    p.add_argument("--device", default="auto", help="hf backend: auto (GPU LOCAL_RANK if any, else cpu), cpu, cuda:0")
    p.add_argument("--dtype", default="auto", help="hf backend: auto, float32, bfloat16, float16")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run `sicog sample` with parsed flags."""
    from sicog.stages.sampling.runner import SampleConfig, run_sampling

    cfg = SampleConfig(
        model=args.model, data=args.data, out=args.out, mode=args.mode, n=args.n,
        image_folder=args.image_folder, temperature=args.temperature, top_p=args.top_p,
        top_k=args.top_k, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, corruption=args.corruption, seed=args.seed,
        backend=args.backend, api_base=args.api_base, api_key_env=args.api_key_env,
        concurrency=args.concurrency, max_retries=args.max_retries,
        request_timeout=args.request_timeout, retry_delay=args.retry_delay, on_error=args.on_error, device=args.device,
        dtype=args.dtype, progress=not args.no_progress,
    )
    run_sampling(cfg)
    return 0
