"""`sicog evaluate`: multiple-choice accuracy (and caption scores) of a checkpoint on a benchmark.

Outputs in --out (written under temporary names in --out/.partial/results/ and renamed into
place at the end; summary.json last, so its presence marks a finished evaluation):
  mcq_predictions.jsonl   one line per item: index, question, options, prediction (raw reply),
                          extracted (letter or null), answer, correct, category (for the first
                          --mcq-scoring; a second one writes mcq_<way>_predictions.jsonl etc.)
  mcq_result.xlsx/.csv    VLMEvalKit-like result table: the TSV's columns (image dropped)
                          + prediction, extracted, hit
  captions_predictions.jsonl  (caption evaluation only) reply, scored text and counts per image
  summary.json            accuracy, n, unanswered, chance, per-category accuracy; caption figures;
                          `settings`: every setting and input fingerprint that made these results

While it runs, the replies of every finished chunk are kept in --out/.partial/ (see
sicog.eval.partial): an interrupted evaluation rerun with the same settings continues where it
stopped, with the results of an uninterrupted run. A finished --out is kept when its summary
records the same settings (nothing to do); other settings need --overwrite (sicog.eval.outputs).
--out is claimed before any work: apart from every input, writable, and locked (`OUT.lock`)
against a second evaluation writing it at the same time.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import NamedTuple

from sicog.config_flags import add_config_arguments, check_config, config_from_args
from sicog.eval.config import EvaluateConfig
from sicog.utils.io import SicogError, file_fingerprint, git_commit, write_json, write_jsonl

log = logging.getLogger(__name__)

DESCRIPTION = """Evaluate a checkpoint on a multiple-choice benchmark (VLMEvalKit-style TSV) and,
for the synthetic world, on caption ground truth (object recall, attribute accuracy, CHAIR-like
hallucination rate). Greedy decoding, batched; or multiple choice by option likelihood
(--mcq-scoring likelihood).

usage: sicog evaluate [CONFIG.yaml] [flags]. CONFIG.yaml holds any of the settings below under
their field names (--prompt-style is `prompt_style:`, --no-progress is `progress: false`; quote
on/off: `captions: 'off'`); flags given on the command line override it. --model and
--benchmark are required, from either.

Resumable: finished chunks are kept in OUT/.partial/; rerunning an interrupted evaluation with
the same settings continues it (with other settings it is refused until that folder is removed).
Rerunning a finished evaluation with the same settings does nothing; with other settings it is
refused unless --overwrite. --out must not be, contain or lie inside --model or the benchmark.

examples:
  sicog evaluate --model runs/demo/sicog/final --benchmark world:runs/demo/world --out runs/eval
  sicog evaluate --model CKPT --benchmark ~/LMUData/MMStar.tsv --prompt-style cot --max-new-tokens 512
  sicog evaluate evaluate.yaml --limit 100"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `sicog evaluate`: one per field of EvaluateConfig, plus the optional CONFIG.yaml."""
    add_config_arguments(p, EvaluateConfig)


class ResolvedBenchmark(NamedTuple):
    tsv: Path
    captions: Path | None  # caption ground truth, when the benchmark has one
    name: str
    caption_scorer: str  # name of the registered sicog.eval.captions scorer for `captions`


def resolve_benchmark(spec: str) -> ResolvedBenchmark:
    """The files of a --benchmark value: a TSV, or world:DIR / DIR.

    world:DIR (or a folder) is a data bundle (sicog.data.bundle): its manifest names `benchmark`,
    optionally `benchmark_captions` and the `caption_scorer` that reads them (default scene_graph).
    """
    from sicog.data.bundle import bundle_file, bundle_files, read_manifest
    from sicog.eval.captions import DEFAULT_CAPTION_SCORER

    folder = None
    if spec.startswith("world:"):
        folder = Path(spec[len("world:"):])
    elif Path(spec).is_dir():
        folder = Path(spec)
    if folder is None:
        tsv = Path(spec)
        if not tsv.is_file():
            raise SicogError(f"--benchmark: file not found: {tsv}")
        return ResolvedBenchmark(tsv, None, tsv.stem, DEFAULT_CAPTION_SCORER)
    try:
        manifest = read_manifest(folder)
        tsv = bundle_file(folder, "benchmark", manifest)
    except SicogError as e:
        raise SicogError(f"--benchmark: {e}") from None
    captions = bundle_files(folder, manifest).get("benchmark_captions")
    scorer = manifest.get("caption_scorer", DEFAULT_CAPTION_SCORER)
    return ResolvedBenchmark(tsv, captions, f"world-{folder.resolve().name}", scorer)


def output_dir(cfg: EvaluateConfig, bench_name: str | None = None) -> Path:
    """--out, or outputs/eval/<checkpoint name>/<benchmark name>."""
    if cfg.out:
        return Path(cfg.out)
    name = bench_name or resolve_benchmark(cfg.benchmark).name
    return Path("outputs") / "eval" / Path(cfg.model).resolve().name / name


def run_settings(cfg: EvaluateConfig, bench: ResolvedBenchmark, caption_path: Path | None) -> dict:
    """What decides the replies: a resumed evaluation must match it (sicog.eval.partial)."""
    from sicog.utils.io import model_files_fingerprint

    captions = None
    if caption_path is not None:
        captions = {"file": file_fingerprint(caption_path), "scorer": bench.caption_scorer,
                    "prompt": cfg.caption_prompt, "max_new_tokens": cfg.caption_max_new_tokens,
                    "limit": cfg.caption_limit}
    return {"model": model_files_fingerprint(cfg.model), "benchmark": file_fingerprint(bench.tsv),
            "limit": cfg.limit, **({"generate_limit": cfg.generate_limit} if cfg.generate_limit else {}),
            "batch_size": cfg.batch_size, "prompt_style": cfg.prompt_style,
            "max_new_tokens": cfg.reply_tokens(), "mcq_scoring": cfg.scorings(),
            "shuffled_image_control": cfg.shuffled_image_control, "captions": captions,
            "device": cfg.device, "dtype": cfg.dtype, **_list_settings(cfg)}


def _list_settings(cfg: EvaluateConfig) -> dict:
    """The `benchmarks:` list in the settings (only when there is one: older summaries stay valid)."""
    if not cfg.benchmarks:
        return {}
    from sicog.eval.benchmark_list import parse_benchmarks

    return {"benchmarks": {name: file_fingerprint(e["tsv"]) for name, e in parse_benchmarks(cfg.benchmarks).items()},
            "judge": {k: (cfg.judge or {}).get(k) for k in ("base_url", "model")} if cfg.judge else None,
            "open_max_new_tokens": cfg.open_max_new_tokens}


def evaluate_checkpoint(cfg: EvaluateConfig, *, predict=None, caption_predict=None, option_scorer=None) -> dict:
    """Evaluate and write the outputs (see the module docstring); returns the summary.

    `predict` / `caption_predict` / `option_scorer` replace the checkpoint's predictors (tests,
    other backends).
    """
    from sicog.eval.outputs import claim_output
    from sicog.utils.lock import output_lock

    check_config(cfg)
    bench = resolve_benchmark(cfg.benchmark)
    caption_path = Path(cfg.captions_file) if cfg.captions_file else bench.captions
    out = output_dir(cfg, bench.name)
    spec = cfg.benchmark
    bench_input = Path(spec[len("world:"):]) if spec.startswith("world:") else Path(spec)
    claim_output(out, cfg.model, bench_input, caption_path if cfg.captions != "off" else None)
    with output_lock(out):
        return _evaluate(cfg, bench, caption_path, out, predict, caption_predict, option_scorer)


def _check_caption_images(cap_items: list, caption_path: Path, allow_outside: bool) -> None:
    """Every caption image inside the ground truth's folder (symlinks followed), unless allowed."""
    from sicog.data.images import confine

    if allow_outside:
        return
    for it in cap_items:
        confine(caption_path.parent, it.image, f"{caption_path}:{getattr(it, 'line', '?')}")


def _check_image_sizes(items: list, cap_items: list, tsv, caption_path: Path | None, model) -> None:
    """Every image within the checkpoint's pixel cap (a uhd model's max_pixels) and PIL's
    decompression-bomb limit, from its header: a SicogError naming the row before a model loads,
    not the image processor's error after."""
    from sicog.data.images import image_header, max_pixels_in_folder

    cap = max_pixels_in_folder(model)
    for it in items:
        if it.image is not None:
            image_header(it.image, f"{tsv}:{it.line}: benchmark row {it.index!r}", cap)
    for it in cap_items:
        image_header(it.image, f"{caption_path}:{getattr(it, 'line', '?')}: caption item {it.id!r}", cap)


def _evaluate(cfg: EvaluateConfig, bench: ResolvedBenchmark, caption_path: Path | None, out: Path,
              predict, caption_predict, option_scorer) -> dict:
    from sicog.data.formats import CAPTION_PROMPT, COD_PROMPT
    from sicog.eval.captions import evaluate_captions, get_caption_scorer
    from sicog.eval.mcq import McqPrediction, evaluate_mcq, read_mcq_tsv, summarize_mcq, with_shuffled_images
    from sicog.eval.outputs import Staging, clear_results, finished_summary
    from sicog.eval.partial import PartialRun
    from sicog.eval.results import write_mcq_outputs

    started = time.time()
    if cfg.captions == "on" and caption_path is None:
        raise SicogError("--captions on: the benchmark has no caption ground truth (use world:DIR or --captions-file)")
    do_captions = cfg.captions != "off" and caption_path is not None
    max_new_tokens, scorings, chunk = cfg.reply_tokens(), cfg.scorings(), cfg.batch_size

    # read (and validate) everything before loading a model
    items = read_mcq_tsv(bench.tsv, limit=cfg.limit)
    scorer = get_caption_scorer(bench.caption_scorer) if do_captions else None
    cap_limit = cfg.caption_limit if cfg.caption_limit is not None else cfg.limit
    cap_items = scorer.read(caption_path, limit=cap_limit) if do_captions else []
    _check_caption_images(cap_items, caption_path, cfg.allow_images_outside_folder)
    _check_image_sizes(items, cap_items, bench.tsv, caption_path, cfg.model)
    log.info("%s: %d multiple-choice items%s", bench.tsv, len(items),
             f", {len(cap_items)} caption images" if do_captions else "")
    blind_items = with_shuffled_images(items) if cfg.shuffled_image_control else None   # fails before loading
    settings = run_settings(cfg, bench, caption_path if do_captions else None)
    finished = finished_summary(out, settings, cfg.overwrite)
    if finished is not None:
        log.info("%s holds a finished evaluation with these settings: nothing to do", out)
        return finished
    partial = PartialRun(out, settings)
    if cfg.overwrite:
        partial.discard_other()
    partial.check()   # other settings' unfinished replies: refused before a model loads

    if predict is None and ("generate" in scorings or do_captions or option_scorer is None):
        from sicog.eval.predict import checkpoint_predictor

        predict = checkpoint_predictor(cfg.model, batch_size=chunk, max_new_tokens=max_new_tokens,
                                       device=cfg.device, dtype=cfg.dtype)
    if cfg.benchmarks and predict is None:
        from sicog.eval.predict import checkpoint_predictor

        predict = checkpoint_predictor(cfg.model, batch_size=chunk, max_new_tokens=max_new_tokens,
                                       device=cfg.device, dtype=cfg.dtype)
    if do_captions and caption_predict is None:
        caption_predict = predict.with_max_new_tokens(cfg.caption_max_new_tokens) \
            if hasattr(predict, "with_max_new_tokens") else predict
    if "likelihood" in scorings and option_scorer is None:
        from sicog.eval.likelihood import OptionScorer

        option_scorer = OptionScorer(predict.model, predict.processor, batch_size=chunk)

    partial.start()
    if cfg.overwrite:
        clear_results(out)   # the earlier evaluation's files (its summary lists them), nothing else
    (out / "summary.json").unlink(missing_ok=True)   # its presence marks a finished evaluation
    staging = Staging(out)
    stage = staging.prepare()
    by_scoring: dict[str, dict] = {}
    files: dict[str, str] = {}

    def score(way: str, mcq_items, tag: str) -> dict:
        part = tag or way
        stored = partial.done(part, [str(it.index) for it in mcq_items], chunk)
        done = [McqPrediction(it, r["prediction"], r["extracted"]) for it, r in zip(mcq_items, stored)]

        def keep(preds) -> None:
            partial.append(part, [{"key": str(p.item.index), "prediction": p.prediction, "extracted": p.extracted}
                                  for p in preds])

        if way == "generate":
            preds = evaluate_mcq(mcq_items, predict, prompt_style=cfg.prompt_style, chunk_size=chunk,
                                 progress=cfg.progress, done=done, on_chunk=keep)
        else:
            from sicog.eval.likelihood import evaluate_mcq_by_likelihood

            preds = evaluate_mcq_by_likelihood(mcq_items, option_scorer, chunk_size=chunk, progress=cfg.progress,
                                               done=done, on_chunk=keep)
        prefix = "mcq" if not tag else f"mcq_{tag}"   # the headline keeps the VLMEvalKit-like names
        files.update({(key if not tag else f"{key}_{tag}"): p.name
                      for key, p in write_mcq_outputs(preds, stage, prefix, way == "generate").items()})
        m = summarize_mcq(preds, vlmevalkit=way == "generate")
        log.info("multiple choice (%s%s): accuracy %.4f (%d/%d, %d unanswered, chance %.4f)", way,
                 ", shuffled images" if tag == "shuffled_images" else "", m["accuracy"], m["correct"], m["n"],
                 m["unanswered"], m["chance_accuracy"])
        return m

    def scored_items(way: str, mcq_items):
        return mcq_items[:cfg.generate_limit] if way == "generate" and cfg.generate_limit else mcq_items

    for k, way in enumerate(scorings):
        by_scoring[way] = score(way, scored_items(way, items), "" if k == 0 else way)
    # the control asks the headline's very questions (images drawn from the whole benchmark)
    shuffled = (score(scorings[0], scored_items(scorings[0], blind_items), "shuffled_images")
                if blind_items is not None else None)
    summary: dict = {
        "model": str(cfg.model),
        "benchmark": str(bench.tsv),
        "benchmark_name": bench.name,
        "prompt_style": cfg.prompt_style,
        "max_new_tokens": max_new_tokens,
        "limit": cfg.limit,
        "mcq_scoring": scorings[0],
        "mcq": by_scoring[scorings[0]],
        "mcq_by_scoring": by_scoring,
        "files": files,
    }
    if shuffled is not None:
        summary["mcq_shuffled_images"] = shuffled
    if do_captions:
        stored = partial.done("captions", [str(it.id) for it in cap_items], chunk)
        prompt = COD_PROMPT if cfg.caption_prompt == "cod" else CAPTION_PROMPT
        records, cap_summary = evaluate_captions(
            cap_items, caption_predict, prompt, scorer, chunk_size=chunk, use_step5=True, progress=cfg.progress,
            done=[r["prediction"] for r in stored],
            on_chunk=lambda recs: partial.append("captions", [{"key": str(r["id"]), "prediction": r["prediction"]}
                                                              for r in recs]))
        write_jsonl(stage / "captions_predictions.jsonl", records)
        summary["captions"] = {"file": str(caption_path), "prompt": cfg.caption_prompt,
                               "max_new_tokens": cfg.caption_max_new_tokens, **cap_summary}
        summary["files"]["captions_predictions"] = "captions_predictions.jsonl"
        log.info("captions: object recall %.4f, hallucination rate %.4f", cap_summary["object_recall"],
                 cap_summary["hallucination_rate"])
    if cfg.benchmarks:
        summary["benchmarks"] = _benchmark_list(cfg, out, predict, partial.settings)
    summary["seconds"] = round(time.time() - started, 2)
    summary["sicog_commit"] = git_commit()
    summary["settings"] = partial.settings
    staging.publish()
    write_json(out / "summary.json", summary)   # last: its presence marks a finished evaluation
    partial.finish()
    return summary


def _benchmark_list(cfg: EvaluateConfig, out: Path, predict, settings: dict) -> dict:
    """The `benchmarks:` list (sicog.eval.benchmark_list), each in OUT/benchmarks/<name>."""
    from sicog.eval.benchmark_list import evaluate_list, judge_settings, parse_benchmarks

    open_predict = (predict.with_max_new_tokens(cfg.open_max_new_tokens)
                    if hasattr(predict, "with_max_new_tokens") else predict)
    common = {"model": settings["model"], "prompt_style": cfg.prompt_style, "max_new_tokens": cfg.reply_tokens(),
              "open_max_new_tokens": cfg.open_max_new_tokens, "batch_size": cfg.batch_size,
              "device": cfg.device, "dtype": cfg.dtype}
    results = evaluate_list(parse_benchmarks(cfg.benchmarks), out, predict, open_predict, common,
                            judge_settings(cfg.judge), cfg.prompt_style, cfg.batch_size, cfg.progress)
    return {name: {k: r[k] for k in ("kind", "headline", "value", "metrics", "n_items", "paired")}
            | {"folder": f"benchmarks/{name}"} for name, r in results.items()}


def run(args: argparse.Namespace) -> int:
    """Entry point of `sicog evaluate` (flags over CONFIG.yaml when given)."""
    cfg = config_from_args(EvaluateConfig, args)
    out = output_dir(cfg)
    summary = evaluate_checkpoint(cfg)
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
    for name, b in (summary.get("benchmarks") or {}).items():
        print(f"{name} ({b['kind']}): {b['headline']} {b['value']:.4f} over {b['n_items']} items")
    print(f"results in {out}")
    return 0
