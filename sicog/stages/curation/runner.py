"""Running `sicog curate`: validate, shard over ranks, score in chunks, merge exactly once.

Every rank validates the whole candidates file first (a bad line fails the run before anything
is written), takes the items i with i % world_size == rank, and appends one *result record* per
item — its scores, and the training record it gives if kept — to its part file
OUT.parts/rank-R.jsonl (sicog.utils.shards). A re-run with the same settings skips finished
items. When all ranks are done, rank 0 decides which items are kept, over all of them
(`scoring.keep_decisions`: --threshold or --keep-fraction), then writes the report,
OUT.summary.json and finally OUT (each atomically) from the parts, in input order, each id
exactly once, and removes the parts.

Before any of this the outputs are claimed (curation/outputs.py: apart from the inputs,
writable) and rank 0 holds `OUT.lock` (and the lock of --report-dir) for the whole run, so a second run on the same --out
fails at once; a finished OUT with the same settings is a no-op, other settings need --overwrite.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from sicog.config_flags import check_config
from sicog.data.formats import with_image_token
from sicog.stages.curation.config import CurateConfig
from sicog.stages.curation.items import CandidateItem, extract_all, load_shard
from sicog.stages.curation.outputs import claim_outputs, clear_outputs, finished_settings, summary_path
from sicog.stages.curation.scoring import ItemScore, keep_decisions, score_items
from sicog.utils import resumable
from sicog.utils.io import SicogError, atomic_write, dumps, write_json
from sicog.utils.lock import output_locks
from sicog.utils.shards import PartWriter, dist_info, parts_dir, read_completed

logger = logging.getLogger(__name__)
SCORE_SCALE = "mean cosine similarity to the item's usable candidates, self included (paper scale)"


def result_record(it: CandidateItem, res: ItemScore) -> dict:
    """What a rank writes per item: the scores, the counts, and the training record if it may be
    kept (outcome `scored`; whether it is, rank 0 decides once every item is scored)."""
    failures: dict[str, int] = {}
    for kind in it.failures:
        if kind:
            failures[kind] = failures.get(kind, 0) + 1
    rec = it.record
    chosen = it.candidates[res.chosen_index].strip() if res.chosen_index is not None else None
    rejected = it.candidates[res.rejected_index].strip() if res.rejected_index is not None else None
    out = {"id": it.id, "outcome": res.outcome, "identical": res.identical,
           "n_candidates": len(it.candidates), "failures": failures, "scores": res.scores,
           "chosen_index": res.chosen_index, "score": res.score, "rejected_index": res.rejected_index,
           "record": None}
    if res.outcome != "scored":
        return out
    image = rec.get("image")
    human = with_image_token(rec["prompt"]) if image else rec["prompt"]
    curated = {"id": it.id}
    if image:
        curated["image"] = image
    curated["conversations"] = [{"from": "human", "value": human}, {"from": "gpt", "value": chosen}]
    curated.update({"mode": it.mode, "corruption": rec.get("corruption"), "scores": res.scores,
                    "chosen_index": res.chosen_index, "score": res.score, "rejected": rejected,
                    "rejected_index": res.rejected_index})
    if "meta" in rec:
        curated["meta"] = rec["meta"]
    out["record"] = curated
    return out


def run_curation(cfg: CurateConfig, encoder=None) -> dict | None:
    """Run (or resume) one curation; returns the stats on rank 0, None on other ranks.

    `encoder` (anything with encode(texts, batch_size, progress) -> array) replaces loading
    `cfg.encoder` (tests and benchmarks pass a loaded one).
    """
    check_config(cfg)  # required settings, choices, CurateConfig.validate
    claim_outputs(cfg)
    rank, _world = dist_info()
    outputs = {"--out": cfg.out, "--report-dir": cfg.report_dir}
    with output_locks(outputs) if rank == 0 else contextlib.nullcontext():
        return _run_claimed(cfg, encoder)


def _run_claimed(cfg: CurateConfig, encoder) -> dict | None:
    from sicog.stages.curation.encoders import load_encoder, parse_encoder_spec

    t_start = time.perf_counter()
    if encoder is None:
        parse_encoder_spec(cfg.encoder)  # a bad --encoder fails before any work
    rank, world = dist_info()
    ids, mine = load_shard(cfg.candidates, cfg.task, rank, world)  # validates everything first
    key, want = cfg.run_key(), finished_settings(cfg)
    finished = resumable.finished(cfg.out, want, cfg.overwrite)
    if finished is not None:
        logger.info("%s is finished with these settings: nothing to do", cfg.out)
        return (finished.get("stats") or {}) if rank == 0 else None
    loaded = {"encoder": encoder}

    def work(rank: int, world: int) -> None:
        done = read_completed(cfg.out)
        pending = [it for it in mine if it.id not in done]
        logger.info("rank %d/%d: %d items (%d finished earlier, %d to curate)", rank, world, len(mine),
                    len(mine) - len(pending), len(pending))
        if pending and loaded["encoder"] is None:
            loaded["encoder"] = load_encoder(cfg.encoder, task=cfg.task, device=cfg.device,
                                             max_seq_length=cfg.max_seq_length, instruction=cfg.instruction,
                                             dtype=cfg.dtype)
        _curate_rank(cfg, pending, loaded["encoder"], rank, t_start)

    def merge(world: int) -> dict:
        info = getattr(loaded["encoder"], "info", None) or {"encoder": cfg.encoder}
        return _merge(cfg, ids, world, t_start, info, want)

    return resumable.run_sharded(
        cfg.out, key, overwrite=cfg.overwrite, wait_timeout=cfg.wait_timeout,
        clear_old=lambda: clear_outputs(cfg, key), work=work,
        covered=lambda: set(ids) <= set(read_completed(cfg.out)), merge=merge)


def _curate_rank(cfg: CurateConfig, pending: list[CandidateItem], encoder, rank: int, t_start: float) -> None:
    """Score this rank's pending items chunk by chunk into its part file, then its stats and marker."""
    stats = {"rank": rank, "items": len(pending), "candidates": 0, "valid_candidates": 0,
             "texts_encoded": 0, "encode_seconds": 0.0, "score_seconds": 0.0}
    with PartWriter(cfg.out, rank) as writer:
        for start in range(0, len(pending), cfg.chunk_items):
            chunk = pending[start:start + cfg.chunk_items]
            extract_all(chunk)
            results, timing = score_items(chunk, encoder, batch_size=cfg.batch_size, seed=cfg.seed,
                                          min_candidates=cfg.min_candidates, progress=cfg.progress and rank == 0)
            for it, res in zip(chunk, results):
                writer.write(result_record(it, res))
            stats["candidates"] += timing.candidates
            stats["valid_candidates"] += sum(e is not None for it in chunk for e in it.extracted)
            stats["texts_encoded"] += timing.texts_encoded
            stats["encode_seconds"] += timing.encode_seconds
            stats["score_seconds"] += timing.score_seconds
            logger.info("rank %d: %d/%d items curated (%d texts encoded in %.1fs)", rank,
                        start + len(chunk), len(pending), timing.texts_encoded, timing.encode_seconds)
    stats["seconds"] = round(time.perf_counter() - t_start, 3)
    resumable.finish_rank(cfg.out, rank, stats)


def _merge(cfg: CurateConfig, ids: list[str], world: int, t_start: float, encoder_info: dict, want: dict) -> dict:
    """Rank 0: the keep decisions over every item, the report, then OUT, from the parts; exactly once
    per id, in input order."""
    from sicog.stages.curation.report import HISTOGRAM_NAME, STATS_NAME, build_stats, cut_text, plot_histogram

    done = read_completed(cfg.out)
    missing = [i for i in ids if i not in done]
    if missing:
        raise SicogError(f"{cfg.out}: cannot merge, {len(missing)} item(s) not curated "
                         f"(first: {missing[0]!r}); run the same command again to finish them")
    results = [done[i] for i in ids]
    per_rank = resumable.rank_stats(cfg.out, world)
    rule = cfg.cut()
    decisions, score_cut = keep_decisions([r["score"] if r["outcome"] == "scored" else None for r in results],
                                          **rule)
    for r, keep in zip(results, decisions):
        r["kept"] = keep
    kept = [r["record"] for r in results if r["kept"]]
    if cfg.report_dir:  # drawn before the clock stops, so total_seconds includes it
        plot_histogram([r["score"] for r in results if r["outcome"] == "scored"], rule, score_cut, len(kept),
                       Path(cfg.report_dir) / HISTOGRAM_NAME,
                       title=f"{cfg.task} curation: {len(kept)}/{len(results)} kept")
    timing = {key: sum(s[key] for s in per_rank)
              for key in ("candidates", "valid_candidates", "texts_encoded", "encode_seconds", "score_seconds")}
    timing.update(total_seconds=time.perf_counter() - t_start, per_rank=per_rank)
    settings = {"task": cfg.task, "score_scale": SCORE_SCALE, "seed": cfg.seed,
                "min_candidates": cfg.min_candidates, "batch_size": cfg.batch_size, "world_size": world,
                "encoder_info": encoder_info, "candidates_file": cfg.candidates, "out": cfg.out,
                "config": asdict(cfg)}
    stats = build_stats(results, rule=rule, score_cut=score_cut, timing=timing, settings=settings)
    if cfg.report_dir:
        write_json(Path(cfg.report_dir) / STATS_NAME, stats)
    write_json(summary_path(cfg.out), {"settings": want, "stats": stats})  # first: an OUT always has one
    with atomic_write(cfg.out) as fh:
        for rec in kept:
            fh.write(dumps(rec) + "\n")
    shutil.rmtree(parts_dir(cfg.out), ignore_errors=True)
    logger.info("wrote %s: %d of %d items kept, %s (%d extraction failures)", cfg.out,
                stats["kept"], stats["items"], cut_text(stats), stats["extraction_failures"])
    return stats
