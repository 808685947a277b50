"""Claiming an output before any work: writability checks and a one-writer lock.

`check_writable(path, flag, kind)` fails with a SicogError naming the flag and the path when
the output could not be written (its nearest existing ancestor is not a writable folder, or a
file stands where a folder must be, or the reverse) - so a command finds out before it spends
hours, not when it writes its results.

`output_lock(path)` takes an exclusive `fcntl.flock` on `<path>.lock` (beside the output as it
resolves: a symlinked output shares its target's lock) and
writes the holder's pid into it. A second writer of the same output fails at once with
"<path> is being written by pid N (lock <path>.lock)". The kernel drops a flock when its process
dies, however it dies (SIGKILL included), so a stale lock file never blocks a later run; a clean
exit removes the file. Folders the lock had to create are removed again when they stay empty.
`output_locks({flag: path, ...})` holds the locks of every output of a command (None skipped),
and refuses an output that is another output's lock file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Iterator

from sicog.utils.io import SicogError

LOCK_SUFFIX = ".lock"


def lock_path(path: str | os.PathLike) -> Path:
    """`<path>.lock` beside the output as it resolves (symlinks followed: a link to an output is
    that output, and shares its lock); for a folder output too: `DIR.lock`, not inside DIR."""
    p = Path(os.path.expanduser(os.fspath(path))).resolve(strict=False)
    return p.with_name(p.name + LOCK_SUFFIX)


def check_writable(path: str | os.PathLike, flag: str, kind: str = "file") -> None:
    """Raise SicogError unless `path` (an output `kind` "file" or "dir") could be written."""
    p = Path(os.path.abspath(path))
    if p.exists():
        if kind == "file" and p.is_dir():
            raise SicogError(f"{flag} {path}: is a folder; expected the path of a file")
        if kind == "dir" and not p.is_dir():
            raise SicogError(f"{flag} {path}: is a file; expected a folder")
        if kind == "dir" and not os.access(p, os.W_OK | os.X_OK):
            raise SicogError(f"{flag} {path}: cannot be written (no write permission on the folder)")
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SicogError(f"{flag} {path}: cannot be written: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SicogError(f"{flag} {path}: cannot be written: no write permission on {ancestor}")


def _holder(lock: Path) -> str:
    try:
        return lock.read_text(encoding="utf-8").strip() or "?"
    except (OSError, UnicodeDecodeError):
        return "?"


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and its missing ancestors; returns those created, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
    return list(reversed(missing))


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, flag: str = "--out") -> Iterator[Path]:
    """Hold the exclusive lock of output `path` for the block (see the module docstring)."""
    lock = lock_path(path)
    try:
        created = _make_parents(lock.parent)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise SicogError(f"{flag} {path}: cannot be written (lock {lock}: {e.strerror or e})") from None
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise SicogError(f"{flag} {path}: cannot lock {lock}: {e.strerror or e}") from None
                raise SicogError(f"{path} is being written by pid {_holder(lock)} (lock {lock}); wait for "
                                 "that run to finish, or stop it, before writing this output again") from None
            # the file may have been removed (and re-created) by the holder that just let go
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.fsync(fd)
        except OSError as e:  # a full disk, before any work
            raise SicogError(f"{flag} {path}: cannot write its lock {lock}: {e.strerror or e}") from None
    except BaseException:
        os.close(fd)
        raise
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()  # still locked: a waiting opener sees another inode and retries
        os.close(fd)
        for d in reversed(created):
            with contextlib.suppress(OSError):
                d.rmdir()  # only when empty


@contextlib.contextmanager
def output_locks(outputs: dict[str, str | os.PathLike | None]) -> Iterator[list[Path]]:
    """Hold `output_lock` of every output (flag -> path; None or "" skipped) for the block."""
    given = {flag: p for flag, p in outputs.items() if p not in (None, "")}
    resolved = {flag: Path(os.path.expanduser(os.fspath(p))).resolve(strict=False) for flag, p in given.items()}
    for flag, p in given.items():
        for other, q in resolved.items():
            if lock_path(p) == q:
                raise SicogError(f"{other} ({outputs[other]}) is the lock file of {flag} ({p}); choose another {other}")
    with contextlib.ExitStack() as stack:
        locks, seen = [], set()
        for flag, p in given.items():
            if lock_path(p) not in seen:
                seen.add(lock_path(p))
                locks.append(stack.enter_context(output_lock(p, flag)))
        yield locks


def as_recorded(settings: dict) -> dict:
    """`settings` as they read back from a JSON file (tuples become lists ...), for comparison."""
    return json.loads(json.dumps(settings))


def settings_diff(old: dict, new: dict) -> str:
    """"key: earlier X, now Y; ..." for every key whose value differs ('' when none does)."""
    keys = list(new) + [k for k in old if k not in new]
    return "; ".join(f"{k}: earlier {old.get(k)!r}, now {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def check_finished(out: str | os.PathLike, recorded: dict | None, wanted: dict, record_file: str | os.PathLike,
                   overwrite: bool) -> bool:
    """Whether the finished output `out` can be kept: True when `recorded` (its settings, read from
    `record_file`; None if unknown) equals `wanted`. Otherwise a SicogError naming the output and
    what differs, unless `overwrite` (then False: the caller replaces it)."""
    wanted = as_recorded(wanted)
    if recorded is not None and recorded == wanted:
        return True
    if overwrite:
        return False
    if recorded is None:
        raise SicogError(f"{out} exists, but {record_file} does not record the settings that made it (not "
                         "written by this command, or by an older version); pass --overwrite to replace it, "
                         "or choose another output")
    raise SicogError(f"{out} was made with other settings ({settings_diff(recorded, wanted)}); pass --overwrite "
                     "to replace it, or choose another output")
