"""File helpers: atomic writes (no half-written outputs), the one JSONL reader, user-facing errors."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator


class SicogError(Exception):
    """An error caused by the user's input (file, config, flag): the CLI prints it without a
    traceback and exits with status 2. The message must name the place at fault."""


#: errors of a full, read-only or failing disk: a SicogError naming the path, not a traceback
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


def disk_error(path: str | os.PathLike, e: OSError) -> SicogError:
    """The user-facing error of an OSError met while writing `path` (full disk, quota, ...)."""
    err = SicogError(f"{path}: cannot write: {e.strerror or e} (nothing was left half-written; free space or "
                     "choose another output, then run the same command again)")
    err.reason = str(e.strerror or e)  # for a caller that words its own message (annotate's journal)
    return err


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` (non-ASCII kept) that writes strict JSON: NaN and +-Infinity, which other JSON
    readers refuse, become null."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, **kwargs)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temp file beside `path`; on success fsync and rename it onto `path`, on error delete it.

    Readers therefore see either the old file, or the complete new one, never a partial one. A
    full disk (`DISK_ERRNOS`) is a SicogError naming `path`. Temp files of this path left by a
    killed writer (older than `STALE_TEMP_SECONDS`) are removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        if e.errno in DISK_ERRNOS:
            raise disk_error(path, e) from None
        raise
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if e.errno in DISK_ERRNOS:
            raise disk_error(path, e) from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: a temp file of ours this old has no live writer (a write takes seconds, not hours)
STALE_TEMP_SECONDS = 24 * 3600


def remove_stale_temps(path: str | os.PathLike, older_than: float = STALE_TEMP_SECONDS) -> None:
    """Remove `.NAME.*.tmp` files and folders beside `path` (atomic_write's and atomic_dir's own) older
    than `older_than` seconds: a writer killed before its rename leaves one. A caller holding the
    output's lock (`sicog.utils.lock`) passes 0: no live writer of that path can own one then."""
    path = Path(path)
    cutoff = time.time() - older_than
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.lstat().st_mtime >= cutoff:
                    continue
                if tmp.is_dir() and not tmp.is_symlink():
                    shutil.rmtree(tmp)  # atomic_dir's
                else:
                    tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temp name; rename it onto `path` only when the block succeeds.

    An existing `path` is replaced (moved aside first, deleted after the rename).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    """Write JSON atomically (UTF-8, non-ASCII kept)."""
    with atomic_write(path) as fh:
        fh.write(dumps(obj, indent=indent) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write one JSON object per line, atomically; returns the number of lines."""
    n = 0
    with atomic_write(path) as fh:
        for rec in records:
            fh.write(dumps(rec) + "\n")
            n += 1
    return n


#: a \\uD800-\\uDFFF escape: JSON allows one alone, Unicode (and so every UTF-8 writer) does not
_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


class _LoneSurrogate(ValueError):
    pass


def _check_unicode(value: Any) -> None:
    """Raise _LoneSurrogate when a string in `value` holds half a surrogate pair (`"\\ud800"`): such
    a record could be read but never written back (UTF-8 cannot encode it)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise _LoneSurrogate(f"a lone surrogate \\u{ord(e.object[e.start]):04x} (half of a UTF-16 pair) is no "
                             "Unicode character") from None


def iter_jsonl(path: str | os.PathLike, *, errors: str = "raise", torn_tail_ok: bool = False,
               error_type: type[Exception] = SicogError) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed value) for every non-blank line of a JSONL file.

    A malformed line raises `error_type` naming file:line and the column. With errors="yield"
    it yields (line number, that error) instead, so a caller can skip and count it. With
    `torn_tail_ok` a malformed LAST line without a final newline is ignored: a writer killed
    mid-line (or still writing) leaves one; a complete line always ends with "\n", so a
    malformed line anywhere else is corruption and is reported as usual.
    """
    if errors not in ("raise", "yield"):
        raise ValueError(f"iter_jsonl: errors must be 'raise' or 'yield', got {errors!r}")
    with open(path, "rb") as fh:  # bytes: a line torn inside a UTF-8 character is a torn line too
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark (Windows editors write one)
            if not raw.strip():
                continue
            try:  # a BOM (Windows editors write one) is not part of the first record
                value = json.loads(raw.decode("utf-8-sig" if lineno == 1 else "utf-8"))
                if _SURROGATE.search(raw):
                    _check_unicode(value)
                yield lineno, value
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, _LoneSurrogate) as e:
                if torn_tail_ok and not raw.endswith(b"\n"):
                    return  # only the last line can lack its newline: a torn write
                why = (f"invalid JSON: {e.msg} (column {e.colno})" if isinstance(e, json.JSONDecodeError)
                       else "invalid JSON: nested too deeply to read" if isinstance(e, RecursionError)
                       else f"invalid JSON: {e}" if isinstance(e, _LoneSurrogate)
                       else f"not UTF-8 text ({e.reason} at byte {e.start})")
                err = error_type(f"{path}:{lineno}: {why}")
                if errors == "raise":
                    raise err from None
                yield lineno, err


def file_fingerprint(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (hex, first 16 chars): identifies a data file in manifests. A
    missing, unreadable or non-regular file (a FIFO would block for ever) is a SicogError naming it."""
    h = hashlib.sha256()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            what = "a folder" if os.path.isdir(path) else "not a regular file (a FIFO, socket or device)"
            raise SicogError(f"{path}: is {what}; expected a data file")
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    except FileNotFoundError:
        raise SicogError(f"{path}: file not found") from None
    except OSError as e:
        raise SicogError(f"{path}: cannot be read: {e.strerror or e}") from None
    return h.hexdigest()[:16]


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def model_files_fingerprint(model: str | os.PathLike, every_file: bool = False) -> dict:
    """Size and modification time of a checkpoint folder's config.json and weight files (with
    `every_file`: of every file in it, tokenizer and processor files too): enough to tell a
    rewritten model, without reading 15 GB of weights on every run that compares settings.
    A name that is no folder (a served model) is recorded as given."""
    folder = Path(model)
    if not folder.is_dir():
        return {"name": str(model)}
    files = sorted(f for f in folder.iterdir()
                   if f.is_file() and (every_file or f.name == "config.json" or f.suffix in WEIGHT_SUFFIXES))
    return {f.name: f"{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files}


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The current git commit of the sicog source tree, or None outside a git checkout."""
    import subprocess

    where = cwd or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
