"""Orchestration of `sicog sample`: validate, shard, resume, generate, merge exactly once.

1. The whole data file is read and validated first (file:line errors) - before anything is
   written, so a malformed file leaves no output behind.
2. Rank r of K owns the records with index % K == r (all corruptions of a record go together).
3. Finished items are appended to `OUT.parts/rank-r.jsonl` (sicog.utils.shards); a re-run skips
   every id found in any part file. `OUT.parts/run.json` records the settings that determine the
   candidates, and a re-run with different settings is refused instead of mixing the two.
4. Items whose image is missing or unreadable raise (naming the record), or under `--on-error
   skip` are listed in `OUT.parts/rank-r.skipped` and in the summary.
5. After all ranks finish (gloo barrier under torchrun; otherwise rank 0 waits for the parts
   to cover every id), rank 0 writes `OUT.summary.json` (with the settings and input
   fingerprints of `run.json`) and then OUT atomically, in input order.

Steps 3 and 5, and what a finished OUT or --overwrite means, are the protocol every sharded
output follows (sicog.utils.resumable). Before any of this: --out must be apart from every input
(sicog.utils.paths) and writable, and rank 0 holds `OUT.lock` (sicog.utils.lock) for the whole
run, so a second run on the same --out fails at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict
from pathlib import Path

from sicog.config_flags import check_config
from sicog.data.images import max_pixels_in_folder
from sicog.stages.sampling.config import SampleConfig
from sicog.stages.sampling.items import SampleItem, candidate_record, check_image_exists, load_items
from sicog.stages.sampling.outputs import claim_output, run_settings
from sicog.utils import resumable
from sicog.utils.io import SicogError, dumps, iter_jsonl, write_json
from sicog.utils.lock import output_lock
from sicog.utils.resumable import summary_path
from sicog.utils.secrets import mask_secrets
from sicog.utils.shards import PartWriter, dist_info, merge_parts, owns, parts_dir, read_completed

logger = logging.getLogger(__name__)


def _skip_file(out, rank: int) -> Path:
    return parts_dir(out) / f"rank-{rank}.skipped"


def _read_skips(out, world_size: int) -> list[dict]:
    skips = []
    for r in range(world_size):
        f = _skip_file(out, r)
        if f.exists():  # a line torn by a kill is ignored: that item will be retried
            skips.extend(rec for _lineno, rec in iter_jsonl(f, torn_tail_ok=True))
    return skips


class _Progress:
    """Counts candidates and tokens; the clock (and the bar) starts when the backend is ready,
    so model loading does not count against candidates/s."""

    def __init__(self, total: int, rank: int, enabled: bool):
        self.total, self.rank, self.enabled = total, rank, enabled
        self.stats = {"candidates": 0, "tokens": 0, "seconds": 0.0}
        self._t0: float | None = None
        self._bar = None

    def start(self) -> None:
        """Called by the backend once the model is loaded / the server answers."""
        from tqdm.auto import tqdm

        self._t0 = time.perf_counter()
        self._bar = tqdm(total=self.total, unit="cand", desc=f"sample[{self.rank}]",
                         dynamic_ncols=True, disable=not self.enabled, smoothing=0.1)

    def __call__(self, n_candidates: int, n_tokens: int) -> None:
        if self._t0 is None:
            self.start()
        self.stats["candidates"] += n_candidates
        self.stats["tokens"] += n_tokens
        self.stats["seconds"] = time.perf_counter() - self._t0
        self._bar.update(n_candidates)
        self._bar.set_postfix(tok_s=f"{self.stats['tokens'] / max(self.stats['seconds'], 1e-9):.0f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _select_backend(cfg: SampleConfig):
    if cfg.backend == "hf":
        from sicog.stages.sampling.hf_backend import run_hf

        return run_hf
    if cfg.backend == "openai":
        from sicog.stages.sampling.openai_backend import run_openai

        return run_openai
    raise SicogError(f"--backend: unknown backend {cfg.backend!r} (hf or openai)")


def run_sampling(cfg: SampleConfig) -> dict | None:
    """Run (or resume) one sampling job; returns the summary on rank 0, None on other ranks."""
    check_config(cfg)  # required settings, choices, SampleConfig.validate
    claim_output(cfg)
    rank, _world = dist_info()
    with output_lock(cfg.out) if rank == 0 else contextlib.nullcontext():
        return _run_claimed(cfg)


def _run_claimed(cfg: SampleConfig) -> dict | None:
    from sicog.stages.sampling.items import parse_corruptions

    rank, world = dist_info()
    out = Path(cfg.out)
    corruptions = parse_corruptions(cfg.corruption)
    items = load_items(cfg.data, cfg.mode, corruptions)  # validates the whole file first
    want = run_settings(cfg)
    finished = resumable.finished(out, want, cfg.overwrite)
    if finished is not None:
        logger.info("%s is finished with these settings: nothing to do", out)
        return finished if rank == 0 else None
    backend = _select_backend(cfg)
    if cfg.backend == "hf":
        from sicog.eval.predict import check_weight_files

        check_weight_files(cfg.model)
    ids = [it.id for it in items]

    def covered() -> bool:  # every id finished or skipped by some rank
        done, skipped = read_completed(out), {s["id"] for s in _read_skips(out, world)}
        return all(i in done or i in skipped for i in ids)

    return resumable.run_sharded(
        out, want, overwrite=cfg.overwrite, wait_timeout=cfg.wait_timeout,
        clear_old=lambda: resumable.clear(out, want),
        work=lambda rank, world: _run_rank(cfg, items, rank, world, backend), covered=covered,
        merge=lambda world: _merge_and_summarise(cfg, items, world, want))


def _run_rank(cfg: SampleConfig, items: list[SampleItem], rank: int, world: int, backend) -> None:
    """This rank's share: skip what earlier runs finished, generate the rest into its part file."""
    out = Path(cfg.out)
    mine = [it for it in items if owns(it.record_index, rank, world)]
    done_recs = read_completed(out)
    done = {it.id for it in mine if it.id in done_recs}
    skip_fh = open(_skip_file(out, rank), "w", encoding="utf-8")  # this run's skips only
    skipped: list[dict] = []

    def skip(item: SampleItem, reason: str) -> None:
        logger.warning("skipping %s: %s", item.id, reason)
        entry = {"id": item.id, "where": item.where, "reason": reason}
        skipped.append(entry)
        skip_fh.write(dumps(entry) + "\n")
        skip_fh.flush()

    runnable = []
    max_pixels = max_pixels_in_folder(cfg.model) if cfg.backend == "hf" else None
    for it in mine:
        if it.id in done:
            runnable.append(it)
            continue
        try:  # before generating, before the model loads
            check_image_exists(it, cfg.image_folder, cfg.allow_images_outside_folder, max_pixels)
            runnable.append(it)
        except SicogError as e:
            if cfg.on_error != "skip":
                skip_fh.close()
                raise
            skip(it, str(e))

    pending = sum(it.id not in done for it in runnable)
    logger.info("rank %d/%d: %d items (%d done earlier, %d to generate, %d skipped), n=%d",
                rank, world, len(mine), len(done), pending, len(skipped), cfg.n)
    meta = cfg.meta()
    tracker = _Progress(total=pending * cfg.n, rank=rank, enabled=cfg.progress and rank == 0)
    with PartWriter(out, rank) as writer:
        def emit(item: SampleItem, candidates: list[str]) -> None:
            if len(candidates) != cfg.n:
                raise RuntimeError(f"{item.id}: backend returned {len(candidates)} candidates, not {cfg.n}")
            writer.write(candidate_record(item, candidates, meta))

        try:
            if pending:
                backend(cfg, runnable, done, emit, skip, tracker)
        finally:
            skip_fh.close()
            tracker.close()
    stats = tracker.stats
    seconds = stats["seconds"]
    rank_stats = {"rank": rank, "items": len(mine), "generated_items": stats["candidates"] // cfg.n,
                  "candidates": stats["candidates"], "tokens": stats["tokens"], "seconds": seconds,
                  "skipped": len(skipped)}
    resumable.finish_rank(out, rank, rank_stats)
    logger.info("rank %d finished: %d candidates, %d tokens in %.1fs (%.1f candidates/s), %d skipped",
                rank, stats["candidates"], stats["tokens"], seconds,
                stats["candidates"] / max(seconds, 1e-9), len(skipped))


def _merge_and_summarise(cfg: SampleConfig, items: list[SampleItem], world: int, want: dict) -> dict:
    out = Path(cfg.out)
    skips = _read_skips(out, world)
    done = read_completed(out)
    skips = [s for s in skips if s["id"] not in done]
    per_rank = resumable.rank_stats(out, world)
    seconds = max((s["seconds"] for s in per_rank), default=0.0)
    cands = sum(s["candidates"] for s in per_rank)
    tokens = sum(s["tokens"] for s in per_rank)
    ids, missing_ok = [it.id for it in items], {s["id"] for s in skips}
    missing = [i for i in ids if i not in done and i not in missing_ok]
    if missing:  # checked before the summary is written (merge_parts checks again)
        raise SicogError(f"{out}: cannot merge, {len(missing)} record(s) not finished (first: {missing[0]!r}); "
                         "run the same command again to complete them")
    written = sum(i in done for i in ids)
    summary = {
        "out": str(out), "data": cfg.data, "mode": cfg.mode, "n": cfg.n,
        "records": len({it.source_id for it in items}), "items": len(items), "written": written,
        "skipped": len(skips), "skipped_items": skips, "world_size": world,
        "this_run": {"candidates": cands, "tokens": tokens, "seconds": round(seconds, 3),
                     "candidates_per_s": round(cands / seconds, 2) if seconds else None,
                     "tokens_per_s": round(tokens / seconds, 2) if seconds else None},
        "config": mask_secrets(asdict(cfg)), "settings": want,
    }
    write_json(summary_path(out), summary)  # first: an OUT always has its summary beside it
    merge_parts(out, ids, allow_missing=missing_ok)
    if skips:
        logger.warning("%d item(s) skipped (listed in %s)", len(skips), summary_path(out))
    logger.info("wrote %s: %d records x %d candidates", out, written, cfg.n)
    return summary
