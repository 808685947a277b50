"""`sicog data overlap`: does training data overlap the benchmarks it will be evaluated on?

    sicog data overlap --data FILE [FILE ...] --image-folder DIR --benchmark TSV|world:DIR [...] --out OUT

Training files are sicog records (.jsonl or a .json list; `image` relative to --image-folder,
`conversations`); benchmarks are VLMEvalKit-style TSVs (base64 `image`, `question`, `index`; an
`image` cell holding another row's index reuses that row's image) or a world's folder. For every
training record it flags (`sicog.data.overlap_match` has the rules and thresholds):

- image / exact: the record's image has the same pixels as a benchmark image;
- image / near: their perceptual hashes differ in at most --phash-threshold of 64 bits and
  their 4×4 colour thumbnails by at most 12 grey levels on average (resized, re-encoded,
  slightly edited copies);
- question / ngram: at least --question-threshold of a benchmark question's content-word
  n-grams occur in the record's human turns; question / words: all of its (at least 5)
  content words do.

Within one benchmark, rows with the same question and image (MMBench's rotated copies) are one
item, reported under the first index. Writes OUT/overlap.jsonl (one line per flagged pair:
`record_id`, `data_file`, `line`, `benchmark`, `benchmark_index`, `kind`, `match`, `score`, and
`distance` for near images) and OUT/summary.json (counts per benchmark, what could not be read,
settings, seconds), both under temporary names renamed at the end. Training images are decoded
and hashed in --workers processes, in batches; everything streams except the benchmark's hashes.
Exit status 0 when it ran (the counts are the answer), 2 for bad settings or inputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from sicog.config_flags import add_config_arguments, check_config, config_from_args, setting
from sicog.data.overlap_bench import load_benchmarks, resolve_benchmark
from sicog.data.overlap_match import (
    DEFAULT_THRESHOLD,
    FLAT_STD,
    MIN_WORDS,
    THUMB_MAX,
    NearIndex,
    QuestionIndex,
    fingerprint_file,
)
from sicog.data.records import DataError, iter_json_objects
from sicog.utils.io import SicogError, atomic_write, file_fingerprint, write_json
from sicog.utils.lock import check_finished, check_writable, output_lock
from sicog.utils.paths import check_outputs_apart

log = logging.getLogger(__name__)

DESCRIPTION = __doc__.split("\n\n", 1)[1]
SUMMARY = "summary.json"
OVERLAP = "overlap.jsonl"
SHOWN = 20


@dataclass
class OverlapConfig:
    """Settings of `sicog data overlap` (--data, --benchmark and --out are flags of their own)."""

    data: list | None = setting(None, "training data files", cli=False)
    benchmark: list | None = setting(None, "benchmark TSVs or world:DIR", cli=False)
    out: str | None = setting(None, "output folder", cli=False)
    image_folder: str | None = setting(None, "folder the training records' image paths are relative to")
    phash_threshold: int = setting(DEFAULT_THRESHOLD, "most differing bits (of 64) for a near-duplicate image", min=0, max=64)
    ngram: int = setting(3, "question n-gram length, in content words", min=1)
    question_threshold: float = setting(0.8, "least share of a benchmark question's n-grams found in a record", min=0, max=1, min_exclusive=True)
    workers: int = setting(0, "processes that decode and hash images (0: the CPUs there are, at most 8)", min=0)
    batch: int = setting(512, "training records per batch", min=1)
    overwrite: bool = setting(False, "replace an OUT made with other settings")
    progress: bool = setting(True, "no progress bars", invert="--no-progress")

    def check_inputs(self) -> None:
        """The inputs exist (run before any work)."""
        check_config(self)  # each setting's range, when the config was built in code
        if not self.data:
            raise SicogError("--data: at least one training file is needed")
        if not self.benchmark:
            raise SicogError("--benchmark: at least one benchmark is needed")
        if not self.out:
            raise SicogError("--out: the output folder is needed")
        for f in self.data:
            if not Path(f).is_file():
                raise SicogError(f"--data {f}: file not found")
        if self.image_folder and not Path(self.image_folder).is_dir():
            raise SicogError(f"--image-folder {self.image_folder}: not a folder")


def _human_text(rec: dict) -> str:
    turns = rec.get("conversations") or []
    return "\n".join(str(t.get("value", "")) for t in turns if isinstance(t, dict) and t.get("from") == "human")


def _images_of(rec: dict) -> list[str]:
    image = rec.get("image")
    if isinstance(image, str) and image:
        return [image]
    if isinstance(image, list):
        return [i for i in image if isinstance(i, str) and i]
    return []


def _hash_path(path: str):
    return path, fingerprint_file(path)


def scan(cfg: OverlapConfig, out_tmp) -> dict:
    """Write flagged pairs to `out_tmp` (a text file); returns the counts."""
    from tqdm.auto import tqdm

    workers = cfg.workers or min(8, os.cpu_count() or 1)
    unreadable: list[str] = []
    questions = QuestionIndex(cfg.ngram, cfg.question_threshold)
    started = time.time()
    with get_context("fork" if sys.platform == "linux" else "spawn").Pool(workers) as pool:
        bench = load_benchmarks(cfg.benchmark, pool, questions, unreadable, cfg.progress)
        bench_seconds = time.time() - started
        exact: dict[str, list[int]] = {}
        near_pos, near_hashes, near_thumbs = [], [], []
        for pos, b in enumerate(bench):
            if b.digest:
                exact.setdefault(b.digest, []).append(pos)
            if b.phash is not None:
                near_pos.append(pos)
                near_hashes.append(b.phash)
                near_thumbs.append(b.thumb)
        near = NearIndex(near_hashes, near_thumbs, cfg.phash_threshold)
        counts = {name: {"image_exact": 0, "image_near": 0, "question": 0, "records": set(), "items": set()}
                  for name in dict.fromkeys(b.benchmark for b in bench)}
        totals = {"records": 0, "records_with_image": 0, "images_hashed": 0, "bad_lines": 0}
        cache: dict[str, tuple | None] = {}
        folder = Path(cfg.image_folder) if cfg.image_folder else None

        def flush(batch):
            paths = sorted({str(folder / p if folder else p) for _, _, rec in batch for p in _images_of(rec)} - set(cache))
            for path, fp in pool.imap_unordered(_hash_path, paths, chunksize=32):
                cache[path] = fp
                totals["images_hashed"] += 1
                if fp is None:
                    unreadable.append(f"{path}: image missing or not decodable")
            queries = []
            for _, _, rec in batch:
                for p in _images_of(rec):
                    fp = cache[str(folder / p if folder else p)]
                    if fp is not None and fp[1] is not None:
                        queries.append((fp[1], fp[2]))
            near_hits = iter(near.near_many(queries))
            for file, line, rec in batch:
                rid = str(rec.get("id", f"{file}:{line}"))
                base = {"record_id": rid, "data_file": file, "line": line}
                found = []
                imgs = _images_of(rec)
                totals["records_with_image"] += bool(imgs)
                for p in imgs:
                    fp = cache[str(folder / p if folder else p)]
                    if fp is None:
                        continue
                    same = set(exact.get(fp[0], ()))
                    found += [(pos, {"kind": "image", "match": "exact", "score": 1.0}) for pos in sorted(same)]
                    if fp[1] is not None:
                        for k, dist in next(near_hits):
                            pos = near_pos[k]
                            if pos not in same:
                                found.append((pos, {"kind": "image", "match": "near",
                                                    "score": round(1 - dist / 64, 4), "distance": dist}))
                for pos, score, rule in questions.matches(_human_text(rec)):
                    found.append((pos, {"kind": "question", "match": rule, "score": round(score, 4)}))
                for pos, what in found:
                    b = bench[pos]
                    out_tmp.write(json.dumps({**base, "benchmark": b.benchmark, "benchmark_index": b.index, **what},
                                             ensure_ascii=False) + "\n")
                    c = counts[b.benchmark]
                    c["image_exact" if what.get("match") == "exact" else "image_near" if what["kind"] == "image"
                      else "question"] += 1
                    c["records"].add(rid)
                    c["items"].add(b.index)

        bar = tqdm(desc="scan", unit="rec", disable=not cfg.progress, dynamic_ncols=True)
        for file in cfg.data:
            batch = []
            for line, rec in iter_json_objects(file, yield_errors=True):
                if isinstance(rec, DataError) or not isinstance(rec, dict):
                    totals["bad_lines"] += 1
                    if len(unreadable) < 1000:
                        unreadable.append(str(rec) if isinstance(rec, DataError) else f"{file}:{line}: not a record")
                    continue
                totals["records"] += 1
                batch.append((file, line, rec))
                if len(batch) >= cfg.batch:
                    flush(batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                flush(batch)
                bar.update(len(batch))
        bar.close()
    per = {name: {"image_exact_pairs": c["image_exact"], "image_near_pairs": c["image_near"],
                  "question_pairs": c["question"], "records_flagged": len(c["records"]),
                  "benchmark_items_flagged": len(c["items"]),
                  "benchmark_items": sum(b.benchmark == name for b in bench)} for name, c in counts.items()}
    return {"benchmarks": per, **totals, "benchmark_items": len(bench),
            "unreadable": len(unreadable), "unreadable_shown": unreadable[:SHOWN],
            "seconds": {"benchmarks": round(bench_seconds, 1), "total": round(time.time() - started, 1)}}


def _settings(cfg: OverlapConfig) -> dict:
    return {"data": {f: file_fingerprint(f) for f in cfg.data},
            "benchmark": {s: file_fingerprint(resolve_benchmark(s)[1]) for s in cfg.benchmark},
            "image_folder": str(Path(cfg.image_folder).resolve()) if cfg.image_folder else None,
            "phash_threshold": cfg.phash_threshold, "ngram": cfg.ngram,
            "question_threshold": cfg.question_threshold,
            # the fixed rules too: a result made under other rules is not "the same settings"
            "rules": {"thumb_max": THUMB_MAX, "flat_std": FLAT_STD, "min_words": MIN_WORDS}}


def run_overlap(cfg: OverlapConfig) -> dict:
    """Run the audit; returns summary.json's content."""
    cfg.check_inputs()
    out = Path(cfg.out)
    inputs = {f"--data {f}": f for f in cfg.data}
    inputs.update({f"--benchmark {s}": resolve_benchmark(s)[2] for s in cfg.benchmark})
    inputs["--image-folder"] = cfg.image_folder
    check_outputs_apart({"--out": out}, inputs)
    check_writable(out, "--out", "dir")
    settings = _settings(cfg)
    with output_lock(out):
        if (out / SUMMARY).is_file():
            try:
                old = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
            except ValueError:
                old = {}
            if check_finished(out, old.get("settings"), settings, out / SUMMARY, cfg.overwrite):
                log.info("%s: already done with these settings", out)
                return old
        elif out.is_dir() and any(p.name not in (OVERLAP, SUMMARY) for p in out.iterdir()):
            raise SicogError(f"--out {out}: holds other files and no {SUMMARY}; choose an empty or new folder")
        out.mkdir(parents=True, exist_ok=True)
        (out / SUMMARY).unlink(missing_ok=True)
        with atomic_write(out / OVERLAP) as fh:
            summary = scan(cfg, fh)
        summary["settings"] = settings
        write_json(out / SUMMARY, summary)
    return summary


def print_summary(summary: dict) -> None:
    print(f"{summary['records']} record(s), {summary['images_hashed']} image(s) hashed, "
          f"{summary['benchmark_items']} benchmark item(s); {summary['seconds']['total']} s")
    for name, c in summary["benchmarks"].items():
        print(f"  {name}: {c['benchmark_items_flagged']}/{c['benchmark_items']} items flagged by "
              f"{c['records_flagged']} record(s): exact images {c['image_exact_pairs']}, near images "
              f"{c['image_near_pairs']}, questions {c['question_pairs']}")
    if summary["unreadable"]:
        print(f"  not read: {summary['unreadable']}")
        for line in summary["unreadable_shown"]:
            print(f"    {line}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", metavar="FILE", help="training data files (sicog records)")
    p.add_argument("--benchmark", nargs="+", metavar="TSV|world:DIR",
                   help="benchmark TSVs (base64 images) or world folders")
    p.add_argument("--out", metavar="OUT", help="output folder (overlap.jsonl, summary.json)")
    add_config_arguments(p, OverlapConfig)


def run(args: argparse.Namespace) -> int:
    given = {k: v for k, v in (("data", args.data), ("benchmark", args.benchmark), ("out", args.out)) if v}
    cfg = dataclasses.replace(config_from_args(OverlapConfig, args), **given)
    print_summary(run_overlap(cfg))
    return 0
