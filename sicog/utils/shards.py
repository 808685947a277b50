"""Rank sharding with exactly-once, resumable JSONL output (used by `sample` and `curate`).

Each rank handles the input indices i with i % world_size == rank and appends every finished
record (one JSON line, flushed) to its own part file `OUT.parts/rank-R.jsonl`. A restarted run
reads all part files of every earlier run and skips the ids already there, whatever world size
that run had. The merge writes OUT atomically, in input order, each id exactly once, and
removes the parts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterable, Sequence

from sicog.utils.io import DISK_ERRNOS, SicogError, atomic_write, disk_error, dumps, iter_jsonl


def dist_info() -> tuple[int, int]:
    """(rank, world_size) from the launcher's environment (torchrun / deepspeed); (0, 1) alone."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def owns(index: int, rank: int, world_size: int) -> bool:
    """Whether `rank` handles input `index`: the one sharding rule of sample, curate and DPO's
    reference pass (record index modulo world size), so every index has exactly one rank."""
    return index % world_size == rank


def parts_dir(out: str | os.PathLike) -> Path:
    """Where the per-rank part files of `out` live while a job runs."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def read_completed(out: str | os.PathLike, key: str = "id") -> dict[str, dict]:
    """Records already finished by any earlier run (any rank, any world size), by id.

    A torn last line (the process was killed mid-write) is ignored: that record is redone; a
    malformed line elsewhere is corruption and raises SicogError naming file:line.
    """
    done: dict[str, dict] = {}
    d = parts_dir(out)
    if not d.is_dir():
        return done
    for part in sorted(d.glob("*.jsonl")):
        for _lineno, rec in iter_jsonl(part, torn_tail_ok=True):
            done.setdefault(str(rec[key]), rec)
    return done


class PartWriter:
    """Appends finished records to this rank's part file, one flushed line each."""

    def __init__(self, out: str | os.PathLike, rank: int):
        d = parts_dir(out)
        d.mkdir(parents=True, exist_ok=True)
        self.path = d / f"rank-{rank}.jsonl"
        self._repair_torn_tail()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair_torn_tail(self) -> None:
        # A kill mid-line leaves a fragment without "\n"; appending after it would corrupt the
        # next record, so cut the file back to its last complete line.
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)

    def write(self, rec: dict) -> None:
        try:
            self._fh.write(dumps(rec) + "\n")
            self._fh.flush()
        except OSError as e:  # a torn line is cut off by the next run (`_repair_torn_tail`)
            if e.errno in DISK_ERRNOS:
                raise disk_error(self.path, e) from None
            raise

    def close(self) -> None:
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as e:  # a line left torn is cut off by the next run
            if e.errno in DISK_ERRNOS:
                raise disk_error(self.path, e) from None
            raise
        finally:
            with contextlib.suppress(OSError):
                self._fh.close()

    def __enter__(self) -> "PartWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge_parts(out: str | os.PathLike, ordered_ids: Sequence[str], key: str = "id",
                allow_missing: Iterable[str] = ()) -> int:
    """Write OUT atomically with one record per id in `ordered_ids` order, then delete the parts.

    Ids in `allow_missing` (e.g. records skipped on error) may be absent; any other missing id
    is an error and the parts are kept so that a re-run can finish the job.
    """
    done = read_completed(out, key)
    skipped = set(allow_missing)
    missing = [i for i in ordered_ids if i not in done and i not in skipped]
    if missing:
        raise SicogError(
            f"{out}: cannot merge, {len(missing)} record(s) not finished (first: {missing[0]!r}); "
            "run the same command again to complete them"
        )
    n = 0
    with atomic_write(out) as fh:
        for i in ordered_ids:
            if i in done:
                fh.write(dumps(done[i]) + "\n")
                n += 1
    shutil.rmtree(parts_dir(out), ignore_errors=True)
    return n


def drop_unused_parts(out: str | os.PathLike) -> None:
    """Remove OUT.parts/ when no part file holds a record (a one-process run that failed before
    finishing anything leaves nothing behind; finished records are always kept for a re-run)."""
    d = parts_dir(out)
    if d.is_dir() and not any(f.stat().st_size for f in d.glob("*.jsonl")):
        shutil.rmtree(d, ignore_errors=True)


def barrier() -> None:
    """Wait for all ranks when torch.distributed is initialised; a no-op otherwise."""
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
