"""The output folder of `sicog evaluate`: claimed before any work, written under temporary names,
recorded when finished.

- `claim_output`: --out apart from every input (the model folder, the benchmark - a world's
  whole folder for world:DIR - and the caption ground truth's folder, whose images it reads) and
  writable, before anything is read.
- `finished_summary`: `summary.json` records the settings and input fingerprints that made the
  folder (`settings`, as `sicog.eval.partial` keeps them while it runs). The same settings again:
  nothing to do, the summary is returned. Other settings, or a summary without them: refused
  unless --overwrite, and then `clear_results` removes exactly the files that summary lists. A
  folder holding anything but an evaluation (no summary.json, no .partial/) is always refused.
- `Staging`: result files are written into `.partial/results/` and renamed into --out only at
  the end (then summary.json, last: its presence marks a finished evaluation), so an interrupted
  or failed run never leaves a mix of new and old result files beside a summary.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sicog.eval.partial import PARTIAL_DIR
from sicog.utils.io import SicogError
from sicog.utils.lock import check_finished, check_writable
from sicog.utils.paths import check_outputs_apart

log = logging.getLogger(__name__)

SUMMARY = "summary.json"


def claim_output(out: Path, model: str, benchmark: str | Path, captions: Path | None) -> None:
    """Checks only; see the module docstring."""
    check_outputs_apart({"--out": out}, {"--model": model, "--benchmark": benchmark,
                                         "--captions-file (its image folder)": captions.parent if captions else None})
    check_writable(out, "--out", "dir")


def _read_summary(out: Path) -> dict:
    try:
        summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def finished_summary(out: Path, want: dict, overwrite: bool) -> dict | None:
    """The summary of a finished evaluation of these settings, else None (see the module docstring)."""
    if not out.is_dir():
        return None
    if (out / SUMMARY).is_file():
        old = _read_summary(out)
        return old if check_finished(out, old.get("settings"), want, out / SUMMARY, overwrite) else None
    strangers = sorted(p.name for p in out.iterdir() if p.name not in (PARTIAL_DIR, "benchmarks"))
    if strangers:
        raise SicogError(f"--out {out} holds files that are not an evaluation's ({', '.join(strangers[:3])}"
                         f"{' ...' if len(strangers) > 3 else ''}) and no {SUMMARY}; choose an empty or new folder")
    return None


def clear_results(out: Path) -> None:
    """--overwrite: remove the files the old summary.json lists (and it), nothing else."""
    old = _read_summary(out)
    names = [n for n in (old.get("files") or {}).values() if isinstance(n, str) and "/" not in n and n != SUMMARY]
    if old or (out / SUMMARY).exists():
        log.info("--overwrite: removing the results of the earlier evaluation in %s", out)
    for name in names:
        (out / name).unlink(missing_ok=True)
    (out / SUMMARY).unlink(missing_ok=True)


class Staging:
    """`.partial/results/` under --out: where result files are written until `publish`."""

    def __init__(self, out: Path):
        self.out = out
        self.dir = out / PARTIAL_DIR / "results"

    def prepare(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in self.dir.iterdir():  # an earlier, interrupted run's results are written again
            f.unlink()
        return self.dir

    def publish(self) -> None:
        """Rename every staged file into --out (same file system: each rename is atomic)."""
        for f in sorted(self.dir.iterdir()):
            os.replace(f, self.out / f.name)


def read_summary(out: str | os.PathLike) -> dict | None:
    """The summary.json of a finished evaluation in folder `out` (None: not finished)."""
    path = Path(out) / SUMMARY
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
