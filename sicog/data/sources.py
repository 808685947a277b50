"""Reading the files public datasets ship, record by record: a JSON list, JSON Lines or parquet.

The format is told from the content, never from the name: a parquet file starts with the bytes
`PAR1`; otherwise the first non-whitespace byte (after a UTF-8 byte-order mark, if any) decides,
`[` a JSON list, anything else JSON Lines. So a 1 GB `llava_v1_5_mix665k.json` and a `train.JSON`
that is really JSON Lines both read as what they are.

Nothing is held whole: a JSON list is parsed item by item (`ijson`), JSON Lines line by line and
parquet a batch of rows at a time (`pyarrow`), so memory stays flat whatever the file's size.
Parquet input is one file, a folder of shards (every `*.parquet` below it, sorted) or a glob
(`data/train-*.parquet`); a column of images stored in the file (Hugging Face's `Image` feature:
`{"bytes": ..., "path": ...}`) comes through as that dict, for `sicog.data.embedded` to write out.

Each record comes with where it is, `file:N`: N is the line of a JSON Lines file, the 1-based
position of the item in a JSON list, and the 1-based row of a parquet shard.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any, Iterator

from sicog.data.errors import DataError
from sicog.utils.io import file_fingerprint, iter_jsonl

BOM = b"\xef\xbb\xbf"
PARQUET_MAGIC = b"PAR1"
#: rows per parquet batch: small, since a row may carry an image of a few hundred KB
PARQUET_BATCH_ROWS = 64
#: a JSON list up to this size is re-read whole to name the line of a syntax error
_DIAGNOSE_MAX_BYTES = 256 << 20


def sniff_format(path: str | os.PathLike) -> str:
    """"json" (a list), "jsonl" or "parquet", from the file's first bytes (see the module docstring).
    DataError when `path` is no regular file: opening a FIFO would block for ever."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        what = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise DataError(f"{path}: is {what}, not a regular file; expected a .json / .jsonl / .parquet file")
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head == PARQUET_MAGIC:
            return "parquet"
        fh.seek(len(BOM) if head.startswith(BOM) else 0)
        while chunk := fh.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                return "json" if stripped[:1] == b"[" else "jsonl"
    return "jsonl"  # empty or whitespace only: no records either way


def parquet_files(spec: str) -> list[Path] | None:
    """The parquet shards `spec` names (a file, a folder, a glob), sorted; None when `spec` is one
    file that is not parquet. DataError when a folder or glob holds no parquet file."""
    if any(c in spec for c in "*?[") and not os.path.exists(spec):
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        if not found:
            raise DataError(f"{spec}: no file matches this pattern")
        bad = [str(p) for p in found if sniff_format(p) != "parquet"]
        if bad:
            raise DataError(f"{bad[0]}: matched by {spec} but not a parquet file")
        return found
    if not os.path.exists(spec):
        raise DataError(f"{spec}: data file not found")
    if os.path.isdir(spec):
        found = sorted(p for p in Path(spec).rglob("*.parquet") if p.is_file())
        if not found:
            raise DataError(f"{spec}: is a folder without *.parquet shards; expected a .json / .jsonl / .parquet "
                            f"file, a folder of parquet shards or a glob")
        return found
    return [Path(spec)] if sniff_format(spec) == "parquet" else None


def fingerprint(spec: str) -> str:
    """What identifies the input in a summary's settings: the content hash of a JSON / JSONL file;
    for parquet the name, size and modification time of every shard (hashing 13 GB of shards on
    every run to compare settings would cost more than it tells)."""
    shards = parquet_files(spec)
    if shards is None:
        return file_fingerprint(spec)
    h = hashlib.sha256()
    for p in shards:
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "parquet:" + h.hexdigest()[:16]


def iter_source(spec: str, yield_errors: bool = False) -> Iterator[tuple[str, Any]]:
    """Yield (where, record) for every record of `spec` (see the module docstring). With
    `yield_errors` a malformed JSON line comes as (where, DataError) instead of raising; a
    syntax error inside a JSON list always raises (nothing after it can be located)."""
    shards = parquet_files(spec)
    if shards is not None:
        for shard in shards:
            yield from _iter_parquet(shard)
        return
    for n, rec in iter_json_records(spec, yield_errors=yield_errors):
        yield f"{spec}:{n}", rec


def iter_json_records(path: str | os.PathLike, yield_errors: bool = False) -> Iterator[tuple[int, Any]]:
    """(N, record) of a JSON list (N: position) or a JSON Lines file (N: line), streamed."""
    path = str(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: data file not found")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, expected a .json or .jsonl data file")
    fmt = sniff_format(path)
    if fmt == "parquet":
        raise DataError(f"{path}: is a parquet file; `sicog convert NAME --data {path}` turns it into JSON Lines "
                        f"(its images too, with --extract-images-to)")
    if fmt == "json":
        yield from _iter_json_list(path)
    else:
        yield from iter_jsonl(path, errors="yield" if yield_errors else "raise", error_type=DataError)


def _iter_json_list(path: str) -> Iterator[tuple[int, Any]]:
    import ijson

    n = 0
    with open(path, "rb") as fh:
        if fh.read(len(BOM)) != BOM:
            fh.seek(0)
        try:
            for n, item in enumerate(ijson.items(fh, "item", use_float=True), start=1):  # noqa: B007
                yield n, item
        except (ijson.JSONError, UnicodeDecodeError) as e:
            raise _json_list_error(path, n, e) from None


def _json_list_error(path: str, n: int, err: Exception) -> DataError:
    """The error of a JSON list that stops parsing after record n: with its line and column when
    the file is small enough to re-read whole, else the record it follows."""
    if os.path.getsize(path) <= _DIAGNOSE_MAX_BYTES:
        raw = Path(path).read_bytes()
        raw = raw[len(BOM):] if raw.startswith(BOM) else raw
        try:
            json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
            return DataError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start}, column {col})")
        except json.JSONDecodeError as e:
            return DataError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})")
    return DataError(f"{path}: invalid JSON list after its record {n}: {err}")


def _iter_parquet(shard: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(shard)
        row = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for rec in batch.to_pylist():
                row += 1
                yield f"{shard}:{row}", rec
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{shard}: unreadable parquet: {e}") from None
