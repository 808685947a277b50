"""`sicog evaluate`: multiple-choice accuracy (and caption scores) of a checkpoint on a benchmark.

Outputs in --out (each file written atomically; summary.json last, so its presence marks a
finished evaluation):
  mcq_predictions.jsonl   one line per item: index, question, options, prediction (raw reply),
                          extracted (letter or null), answer, correct, category (for the first
                          --mcq-scoring; a second one writes mcq_<way>_predictions.jsonl etc.)
  mcq_result.xlsx/.csv    VLMEvalKit-like result table: the TSV's columns (image dropped)
                          + prediction, extracted, hit
  captions_predictions.jsonl  (caption evaluation only) reply, scored text and counts per image
  summary.json            accuracy, n, unanswered, chance, per-category accuracy; caption figures
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from sicog.utils.io import SicogError, git_commit, write_json, write_jsonl

log = logging.getLogger(__name__)

DESCRIPTION = """Evaluate a checkpoint on a multiple-choice benchmark (VLMEvalKit-style TSV) and,
for the synthetic world, on caption ground truth (object recall, attribute accuracy, CHAIR-like
hallucination rate). Greedy decoding, batched; or multiple choice by option likelihood
(--mcq-scoring likelihood).

examples:
  sicog evaluate --model runs/demo/sicog/final --benchmark world:runs/demo/world --out runs/eval
  sicog evaluate --model CKPT --benchmark ~/LMUData/MMStar.tsv --prompt-style cot --max-new-tokens 512"""

DEFAULT_MAX_NEW_TOKENS = {"direct": 32, "cot": 512}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `sicog evaluate`."""
    p.add_argument("--model", required=True, metavar="CKPT",
                   help="checkpoint folder (a LLaVA-HF folder written by sicog train)")
    p.add_argument("--benchmark", required=True, metavar="FILE.tsv|world:DIR",
                   help="a VLMEvalKit-style multiple-choice TSV, or world:DIR for the benchmark of a "
                        "world written by `sicog world --out DIR` (DIR/manifest.json)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: outputs/eval/<checkpoint name>/<benchmark name>)")
    p.add_argument("--batch-size", type=int, default=16, metavar="N",
                   help="prompts generated together (default 16)")
    p.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                   help="new tokens per multiple-choice reply (default 32 for direct, 512 for cot)")
    p.add_argument("--prompt-style", choices=("direct", "cot"), default="direct",
                   help="direct: ask for the option's letter (VLMEvalKit's LLaVA instruction); cot: ask "
                        "for a step-by-step answer and read its 'The answer is X.' (default direct)")
    p.add_argument("--mcq-scoring", default="generate", metavar="WAY[,WAY]",
                   help="how multiple choice is scored: generate = ask for the option's letter and read "
                        "the reply (VLMEvalKit); likelihood = ask the open question and pick the option "
                        "text the model finds most probable (SEED-Bench style; for tiny models that know "
                        "answers but cannot yet map them to letters). A comma list scores both ways; the "
                        "first is the headline 'mcq' of summary.json (default generate)")
    p.add_argument("--shuffled-image-control", action="store_true",
                   help="also score the headline way with every item's image swapped for another item's: "
                        "the accuracy from the question alone; the gap to the real accuracy is what the "
                        "model reads from the image (summary: mcq_shuffled_images)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate only the first N items (and N caption images)")
    p.add_argument("--captions", choices=("auto", "on", "off"), default="auto",
                   help="caption evaluation: auto = when the benchmark has caption ground truth (a world "
                        "with benchmark_captions, or --captions-file); on = require it; off = skip")
    p.add_argument("--captions-file", metavar="FILE.jsonl", default=None,
                   help="caption ground truth ({id, image, scene} per line, image paths relative to the "
                        "file's folder); default: the world's benchmark_captions")
    p.add_argument("--caption-prompt", choices=("caption", "cod"), default="caption",
                   help="caption: ask for a detailed description; cod: ask for a step-by-step (CoD) "
                        "description, whose Step 5 paragraph is scored (default caption)")
    p.add_argument("--caption-max-new-tokens", type=int, default=256, metavar="N",
                   help="new tokens per generated description (default 256; CoD needs more)")
    p.add_argument("--device", default=None,
                   help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="weights dtype (default: the checkpoint's own)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def resolve_benchmark(spec: str) -> tuple[Path, Path | None, str]:
    """(TSV path, caption ground-truth path or None, benchmark name) for a --benchmark value."""
    world_dir = None
    if spec.startswith("world:"):
        world_dir = Path(spec[len("world:"):])
    elif Path(spec).is_dir():
        world_dir = Path(spec)
    if world_dir is None:
        tsv = Path(spec)
        if not tsv.is_file():
            raise SicogError(f"--benchmark: file not found: {tsv}")
        return tsv, None, tsv.stem
    manifest_path = world_dir / "manifest.json"
    if not manifest_path.is_file():
        raise SicogError(f"--benchmark: {manifest_path} not found (write a world with `sicog world --out {world_dir}`)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SicogError(f"{manifest_path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if "benchmark" not in manifest:
        raise SicogError(f"{manifest_path}: missing key 'benchmark'")
    tsv = world_dir / manifest["benchmark"]
    captions = world_dir / manifest["benchmark_captions"] if manifest.get("benchmark_captions") else None
    return tsv, captions, f"world-{world_dir.resolve().name}"


def evaluate_checkpoint(model: str | Path, benchmark: str, out: str | Path, *, batch_size: int = 16,
                        max_new_tokens: int | None = None, prompt_style: str = "direct",
                        limit: int | None = None, captions: str = "auto", captions_file: str | None = None,
                        caption_prompt: str = "caption", caption_max_new_tokens: int = 256,
                        device: str | None = None, dtype: str | None = None, progress: bool = True,
                        mcq_scoring: str = "generate", shuffled_image_control: bool = False,
                        predict=None, caption_predict=None,
                        option_scorer=None) -> dict:
    """Evaluate and write the outputs (see the module docstring); returns the summary.

    `predict` / `caption_predict` / `option_scorer` replace the checkpoint's predictors (tests,
    other backends).
    """
    from sicog.data.formats import CAPTION_PROMPT, COD_PROMPT
    from sicog.eval.captions import evaluate_captions, read_caption_benchmark
    from sicog.eval.mcq import (
        evaluate_mcq,
        read_mcq_tsv,
        summarize_mcq,
        with_shuffled_images,
        write_mcq_outputs,
    )

    for name, value in (("--batch-size", batch_size), ("--max-new-tokens", max_new_tokens),
                        ("--limit", limit), ("--caption-max-new-tokens", caption_max_new_tokens)):
        if value is not None and value < 1:
            raise SicogError(f"{name} must be >= 1, got {value}")
    started = time.time()
    tsv, world_captions, bench_name = resolve_benchmark(benchmark)
    caption_path = Path(captions_file) if captions_file else world_captions
    if captions == "on" and caption_path is None:
        raise SicogError("--captions on: the benchmark has no caption ground truth (use world:DIR or --captions-file)")
    do_captions = captions != "off" and caption_path is not None
    max_new_tokens = max_new_tokens or DEFAULT_MAX_NEW_TOKENS[prompt_style]
    scorings = parse_mcq_scoring(mcq_scoring)

    # read (and validate) everything before loading a model
    items = read_mcq_tsv(tsv, limit=limit)
    cap_items = read_caption_benchmark(caption_path, limit=limit) if do_captions else []
    log.info("%s: %d multiple-choice items%s", tsv, len(items),
             f", {len(cap_items)} caption images" if do_captions else "")

    blind_items = with_shuffled_images(items) if shuffled_image_control else None   # fails before loading

    if predict is None and ("generate" in scorings or do_captions or option_scorer is None):
        from sicog.eval.predict import checkpoint_predictor

        predict = checkpoint_predictor(model, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                       device=device, dtype=dtype)
    if do_captions and caption_predict is None:
        caption_predict = predict.with_max_new_tokens(caption_max_new_tokens) \
            if hasattr(predict, "with_max_new_tokens") else predict
    if "likelihood" in scorings and option_scorer is None:
        from sicog.eval.likelihood import OptionScorer

        option_scorer = OptionScorer(predict.model, predict.processor, batch_size=batch_size)

    out = Path(out)
    by_scoring: dict[str, dict] = {}
    files: dict[str, str] = {}

    def score(way: str, mcq_items, tag: str) -> dict:
        if way == "generate":
            preds = evaluate_mcq(mcq_items, predict, prompt_style=prompt_style, chunk_size=batch_size,
                                 progress=progress)
        else:
            from sicog.eval.likelihood import evaluate_mcq_by_likelihood

            preds = evaluate_mcq_by_likelihood(mcq_items, option_scorer, chunk_size=batch_size, progress=progress)
        prefix = "mcq" if not tag else f"mcq_{tag}"   # the headline keeps the VLMEvalKit-like names
        files.update({(key if not tag else f"{key}_{tag}"): p.name
                      for key, p in write_mcq_outputs(preds, out, prefix=prefix).items()})
        m = summarize_mcq(preds)
        log.info("multiple choice (%s%s): accuracy %.4f (%d/%d, %d unanswered, chance %.4f)", way,
                 ", shuffled images" if tag == "shuffled_images" else "", m["accuracy"], m["correct"], m["n"],
                 m["unanswered"], m["chance_accuracy"])
        return m

    for k, way in enumerate(scorings):
        by_scoring[way] = score(way, items, "" if k == 0 else way)
    shuffled = score(scorings[0], blind_items, "shuffled_images") if blind_items is not None else None
    summary: dict = {
        "model": str(model),
        "benchmark": str(tsv),
        "benchmark_name": bench_name,
        "prompt_style": prompt_style,
        "max_new_tokens": max_new_tokens,
        "limit": limit,
        "mcq_scoring": scorings[0],
        "mcq": by_scoring[scorings[0]],
        "mcq_by_scoring": by_scoring,
        "files": files,
    }
    if shuffled is not None:
        summary["mcq_shuffled_images"] = shuffled
    if do_captions:
        prompt = COD_PROMPT if caption_prompt == "cod" else CAPTION_PROMPT
        records, cap_summary = evaluate_captions(cap_items, caption_predict, prompt, chunk_size=batch_size,
                                                 use_step5=True, progress=progress)
        write_jsonl(out / "captions_predictions.jsonl", records)
        summary["captions"] = {"file": str(caption_path), "prompt": caption_prompt,
                               "max_new_tokens": caption_max_new_tokens, **cap_summary}
        summary["files"]["captions_predictions"] = "captions_predictions.jsonl"
        log.info("captions: object recall %.4f, hallucination rate %.4f", cap_summary["object_recall"],
                 cap_summary["hallucination_rate"])
    summary["seconds"] = round(time.time() - started, 2)
    summary["sicog_commit"] = git_commit()
    write_json(out / "summary.json", summary)
    return summary


MCQ_SCORINGS = ("generate", "likelihood")


def parse_mcq_scoring(value: str) -> list[str]:
    """'likelihood,generate' -> ['likelihood', 'generate'] (the first is the headline)."""
    ways = [w.strip() for w in str(value).split(",") if w.strip()]
    bad = [w for w in ways if w not in MCQ_SCORINGS]
    if not ways or bad or len(set(ways)) != len(ways):
        raise SicogError(f"--mcq-scoring: expected one or both of {', '.join(MCQ_SCORINGS)} (comma-separated, "
                         f"no repeats), got {value!r}")
    return ways


def run(args: argparse.Namespace) -> int:
    """Entry point of `sicog evaluate`."""
    out = args.out
    if out is None:
        _, _, bench_name = resolve_benchmark(args.benchmark)
        out = Path("outputs") / "eval" / Path(args.model).resolve().name / bench_name
    summary = evaluate_checkpoint(
        args.model, args.benchmark, out, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
        prompt_style=args.prompt_style, limit=args.limit, captions=args.captions,
        captions_file=args.captions_file, caption_prompt=args.caption_prompt,
        caption_max_new_tokens=args.caption_max_new_tokens, device=args.device, dtype=args.dtype,
        progress=not args.no_progress, mcq_scoring=args.mcq_scoring,
        shuffled_image_control=args.shuffled_image_control,
    )
    for way, m in summary["mcq_by_scoring"].items():
        print(f"accuracy {m['accuracy']:.4f} ({m['correct']}/{m['n']}, unanswered {m['unanswered']}, "
              f"chance {m['chance_accuracy']:.4f}, scoring {way})")
    if "mcq_shuffled_images" in summary:
        print(f"accuracy with shuffled images {summary['mcq_shuffled_images']['accuracy']:.4f} "
              f"(scoring {summary['mcq_scoring']}): what the question alone gives")
    if "captions" in summary:
        c = summary["captions"]
        print(f"captions: object recall {c['object_recall']:.4f}, hallucination rate "
              f"{c['hallucination_rate']:.4f}, attribute accuracy {c['attribute_accuracy']}")
    print(f"results in {out}")
    return 0
