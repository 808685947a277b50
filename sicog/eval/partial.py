"""Resumable evaluation: what an interrupted `sicog evaluate` had scored, kept in OUT/.partial/.

The benchmark is scored in chunks of --batch-size items, one scoring way after the other
(`generate`, `likelihood`, `shuffled_images`, `captions`). After each chunk, one JSON line per
scored item (`key` = the item's index or id, plus the model's reply) is appended to
`.partial/<way>.jsonl`; `.partial/settings.json` records every setting that decides the replies,
with fingerprints of the benchmark files and of the model (sicog.utils.io.model_files_fingerprint).

A rerun with the same settings reads the parts back and asks the model only about the rest.
What it reads back is a prefix of the items in whole chunks (a chunk cut short by a kill is
asked again), so the remaining chunks have the boundaries of an uninterrupted run and the
results are the same. A rerun with other settings is refused while any reply is stored: rerun
with the earlier settings, or remove the folder to start over. The folder is removed once the
final files are written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from sicog.utils.io import SicogError, dumps, iter_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
SETTINGS = "settings.json"
class PartialRun:
    """The `.partial` folder of one evaluation output folder.

    `check()` compares the settings (read-only, before any model loads); `start()` records them;
    `done()` / `append()` read and extend the replies of one way; `finish()` removes the folder.
    """

    def __init__(self, out: str | os.PathLike, settings: dict[str, Any]):
        self.dir = Path(out) / PARTIAL_DIR
        self.settings = json.loads(json.dumps(settings))  # as it reads back from settings.json

    def _stored(self) -> dict | None:
        f = self.dir / SETTINGS
        if not f.is_file():
            return None
        try:
            return json.loads(f.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SicogError(f"{f}: unreadable ({e}); remove {self.dir} to start the evaluation over") from None

    def _has_replies(self) -> bool:
        return any(f.stat().st_size > 0 for f in self.dir.glob("*.jsonl"))

    def check(self) -> None:
        """Refuse to continue replies stored under other settings (the message says what differs)."""
        old = self._stored()
        if old is None or old == self.settings or not self._has_replies():
            return
        diff = sorted(k for k in set(old) | set(self.settings) if old.get(k) != self.settings.get(k))
        raise SicogError(f"{self.dir} holds an unfinished evaluation with other settings ({', '.join(diff)}); "
                         f"rerun with the earlier settings to continue it, or remove {self.dir} to start over")

    def discard_other(self) -> None:
        """--overwrite: remove the folder when it holds replies of other settings (or is unreadable)."""
        try:
            self.check()
        except SicogError:
            log.info("--overwrite: removing %s (replies of other settings)", self.dir)
            self.finish()

    def start(self) -> None:
        """Record the settings (after `check`); stored replies of other settings would have failed it."""
        self.check()
        if self._stored() != self.settings:
            for f in self.dir.glob("*.jsonl"):  # empty leftovers of a run that stored no reply
                f.unlink()
            write_json(self.dir / SETTINGS, self.settings)

    def _file(self, way: str) -> Path:
        return self.dir / f"{way}.jsonl"

    def done(self, way: str, keys: list[str], chunk_size: int) -> list[dict]:
        """The stored records of `way` that can be reused: those of whole chunks, in item order."""
        f = self._file(way)
        if not f.is_file():
            return []
        recs = [rec for _line, rec in iter_jsonl(f, torn_tail_ok=True)]
        n = 0
        while n < min(len(recs), len(keys)) and isinstance(recs[n], dict) and recs[n].get("key") == keys[n]:
            n += 1
        if n < len(keys):
            n -= n % chunk_size  # a chunk cut short is asked again, with its original neighbours
        if n != len(recs) or f.read_bytes()[-1:] not in (b"", b"\n"):
            write_jsonl(f, recs[:n])  # drop what is asked again (and a line torn by a kill)
        if n:
            log.info("%s: %d of %d items scored by an earlier run, continuing", f, n, len(keys))
        return recs[:n]

    def append(self, way: str, records: list[dict]) -> None:
        """Append the records of one finished chunk, durably, in one write."""
        with open(self._file(way), "a", encoding="utf-8") as fh:
            fh.write("".join(dumps(r) + "\n" for r in records))
            fh.flush()
            os.fsync(fh.fileno())

    def finish(self) -> None:
        """Remove the folder (after the final files are written)."""
        shutil.rmtree(self.dir, ignore_errors=True)
