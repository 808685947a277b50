"""The resumable, exactly-once output protocol of `sicog sample`, `curate`, `pairs` and `annotate`.

An output OUT is made by K ranks (torchrun, or ranks started by hand) and survives kills:

- While it is unfinished, `OUT.parts/` (sicog.utils.shards) holds each rank's finished records
  (`rank-R.jsonl`), `run.json` (the settings that decide the records: parts are only continued
  with the same settings, `check_parts`), and each rank's markers: `rank-R.stats.json` plus
  `rank-R.finished` when it is done, `rank-R.failed` (the error) when it died.
- `OUT.summary.json` records the settings with whatever the command reports; the command writes
  it just before OUT, so a finished OUT always has one. `finished`: the same settings again is
  nothing to do; other settings are refused unless --overwrite, and then rank 0 `clear`s what
  the output holds of other settings (OUT, its summary, files the old summary names, parts of
  other settings) before any rank writes.
- `run_sharded` is the order every run follows: refuse parts of other settings, join the ranks
  (rank 0 clears on --overwrite), record the settings, let each rank do its share, wait for every
  rank (a process-group barrier, or rank 0 polling the markers), and let rank 0 merge once.

Where an output keeps these files is its `Layout`: `finished`, `check_parts`, `clear` and the
readers take OUT (the layout above, `Layout.of(OUT)`) or a Layout. A folder with a journal (`sicog annotate`, `Layout.journal`)
keeps its settings in `DIR/run.json` and its summary in `DIR/summary.json`, and its parts are an
append-only journal that stays once the run is done (a rerun with --retry-failures appends to
it; the summary sums every paid line), so for it finished means: its summary exists. It is one
process (its concurrency is asyncio's), so it has no ranks to join, wait for or merge: it uses
`finished`, `check_parts` and `clear`, and writes its own outputs from the journal.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from sicog.utils.dist import join_ranks
from sicog.utils.io import SicogError, write_json
from sicog.utils.lock import as_recorded, check_finished, settings_diff
from sicog.utils.shards import barrier, dist_info, drop_unused_parts, parts_dir

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
T = TypeVar("T")


def summary_path(out: str | os.PathLike) -> Path:
    """`OUT.summary.json`: the settings and figures of a finished OUT."""
    out = Path(out)
    return out.with_name(out.name + ".summary.json")


@dataclass(frozen=True)
class Layout:
    """Where an output keeps its state (see the module docstring).

    `out` is what messages name; `outputs` are the files a finished run wrote (what --overwrite
    removes besides the parts, run_file and `made` files); `journal`: the parts stay once the
    run is done, so finished means the summary exists (else: OUT exists and no parts do)."""

    out: Path
    summary: Path
    parts: Path
    run_file: Path
    outputs: tuple[Path, ...]
    journal: bool = False

    @classmethod
    def of(cls, out: str | os.PathLike) -> "Layout":
        """A sharded file OUT: `OUT.summary.json`, `OUT.parts/` holding `run.json`."""
        out = Path(out)
        return cls(out, summary_path(out), parts_dir(out), parts_dir(out) / RUN_FILE, (out, summary_path(out)))


def _layout(out: str | os.PathLike | Layout) -> Layout:
    return out if isinstance(out, Layout) else Layout.of(out)


def read_summary(out: str | os.PathLike | Layout) -> dict:
    """OUT's summary ({} when there is none or it does not read as a JSON object)."""
    try:
        old = json.loads(_layout(out).summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def recorded_settings(out: str | os.PathLike | Layout) -> dict | None:
    """The settings the unfinished parts were started with (run.json); None when there is none, or
    it does not read as a JSON object."""
    try:
        have = json.loads(_layout(out).run_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return have if isinstance(have, dict) else None


def finished(out: str | os.PathLike | Layout, want: dict, overwrite: bool) -> dict | None:
    """The summary of a finished OUT made with the settings `want` (nothing to do); None when there
    is work. A finished OUT of other settings, or one whose summary records none, is a SicogError
    unless `overwrite` (then None: the run clears it)."""
    files = _layout(out)
    if files.journal and not files.summary.exists():
        return None  # the journal (checked against its run.json) or nothing yet
    if not files.journal and (files.parts.is_dir() or not files.out.exists()):
        return None  # unfinished parts (checked against their run.json) or nothing yet
    old = read_summary(files)
    return old if check_finished(files.out, old.get("settings"), want, files.summary, overwrite) else None


def check_parts(out: str | os.PathLike | Layout, key: dict, write: bool) -> None:
    """Parts left by an earlier run are only continued with the same settings `key`; `write`
    records `key` when there are none yet (ranks racing here write the same content, atomically).
    A journal, or outputs, without a run.json are an unknown run's (a sharded OUT is judged by its
    summary, in `finished`)."""
    files = _layout(out)
    f, key = files.run_file, as_recorded(key)
    where = files.parts if f.parent == files.parts else files.out  # what to delete to start over
    if f.is_file():
        have = recorded_settings(files)
        if have != key:
            why = f"other settings ({settings_diff(have, key)})" if have is not None else f"an unreadable {f}"
            raise SicogError(f"{where}: unfinished parts of a run with {why}; rerun with the earlier settings, "
                             f"pass --overwrite, or delete {where} to start over")
        return
    unknown = [p for p in (*files.parts.glob("*.jsonl"), *files.outputs) if p.is_file()] if files.journal else []
    if unknown:
        raise SicogError(f"{where} holds files of an unknown run ({', '.join(p.name for p in unknown)}) and no "
                         f"{f}; pass --overwrite to start again, or choose another output")
    if write:
        f.parent.mkdir(parents=True, exist_ok=True)
        write_json(f, key)


def clear(out: str | os.PathLike | Layout, key: dict,
          made: Callable[[dict], Iterable[str | None]] = lambda old: ()) -> None:
    """--overwrite: remove OUT's outputs (OUT and its summary), the files `made(old summary)` names,
    and parts whose run.json is not `key` - those names only (parts of the same settings are
    continued)."""
    files = _layout(out)
    if files.run_file.exists() or files.parts.is_dir():
        stale = recorded_settings(files) != as_recorded(key)
    else:
        stale = False
    if stale:
        shutil.rmtree(files.parts, ignore_errors=True)
        files.run_file.unlink(missing_ok=True)  # (a sharded OUT's is in its parts: gone already)
    if not (stale and files.journal) and not any(p.exists() for p in files.outputs):
        return
    logger.info("--overwrite: removing %s, its summary and what it made", files.out)
    for f in made(read_summary(files)):
        if isinstance(f, str) and Path(f).is_file():
            Path(f).unlink()
    for p in files.outputs:
        p.unlink(missing_ok=True)


def _marker(out: str | os.PathLike, rank: int, kind: str) -> Path:
    return parts_dir(out) / f"rank-{rank}.{kind}"


def finish_rank(out: str | os.PathLike, rank: int, stats: dict) -> None:
    """This rank is done: its stats, then its `finished` marker (what rank 0 waits for)."""
    write_json(_marker(out, rank, "stats.json"), stats)
    _marker(out, rank, "finished").touch()


def rank_stats(out: str | os.PathLike, world: int) -> list[dict]:
    """The stats of this run's ranks 0..world-1 (a rank of an earlier, larger run is not counted)."""
    files = [_marker(out, r, "stats.json") for r in range(world)]
    return [json.loads(f.read_text(encoding="utf-8")) for f in files if f.is_file()]


def wait_for_ranks(out: str | os.PathLike, world: int, covered: Callable[[], bool], timeout: float,
                   started: float) -> None:
    """Without a process group: rank 0 polls until every rank has its `finished` marker and
    `covered()` says the parts hold every item; a rank that failed during this run (a `failed`
    marker newer than `started`) stops the wait, and so does `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        for r in range(1, world):
            failed = _marker(out, r, "failed")
            if failed.exists() and failed.stat().st_mtime >= started - 1.0:
                raise SicogError(f"rank {r} failed: {failed.read_text(encoding='utf-8').strip()}; "
                                 "run the same command again to finish the job")
        # markers first: re-reading the parts is only worth it once every rank says it is done
        if all(_marker(out, r, "finished").exists() for r in range(world)) and covered():
            return
        if time.monotonic() > deadline:
            raise SicogError(f"{out}: timed out waiting for the other ranks' parts in {parts_dir(out)}")
        time.sleep(2.0)


def run_sharded(out: str | os.PathLike, key: dict, *, overwrite: bool, wait_timeout: float,
                clear_old: Callable[[], None], work: Callable[[int, int], None], covered: Callable[[], bool],
                merge: Callable[[int], T]) -> T | None:
    """One run of a sharded output (see the module docstring); returns `merge(world)` on rank 0,
    None on the other ranks.

    `clear_old()`: rank 0's --overwrite clean-up; `work(rank, world)`: this rank's share into its
    part file (its `finished` marker set by `finish_rank`); `covered()`: whether the parts hold
    every item (rank 0 polling without a process group).
    """
    started = time.time()
    rank, world = dist_info()
    if not overwrite:
        check_parts(out, key, write=False)  # other settings: refused before any rank joins or loads
    grouped = join_ranks(world, rank, overwrite, out, clear_old)
    check_parts(out, key, write=True)
    _marker(out, rank, "failed").unlink(missing_ok=True)
    _marker(out, rank, "finished").unlink(missing_ok=True)
    try:
        work(rank, world)
    except BaseException as e:
        if world == 1:
            drop_unused_parts(out)
        else:  # without a process group, rank 0 learns of a dead rank only through this file
            _marker(out, rank, "failed").write_text(f"{type(e).__name__}: {e}\n", encoding="utf-8")
        raise
    if grouped:
        barrier()
    elif world > 1 and rank == 0:
        wait_for_ranks(out, world, covered, wait_timeout, started)
    result = merge(world) if rank == 0 else None
    if grouped:
        import torch.distributed as dist

        barrier()  # nobody leaves (and tears the group down) before the merge is done
        dist.destroy_process_group()
    return result
