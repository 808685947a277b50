"""The output of `sicog sample`: claimed before any work, recorded when finished.

- `claim_output`: --out (and its summary and parts) apart from every input (the data, the
  image folder, a model folder), and writable - before anything is read or written.
- `run_settings`: what decides the candidates plus fingerprints of the data file and of the
  model's files (size and time: sampling never re-reads 15 GB of weights to compare); kept in
  `OUT.parts/run.json` while the run is unfinished and in `OUT.summary.json` once it is done.
- `finished_summary`: a finished OUT with the same settings means nothing to do; other settings
  (or an OUT without a summary recording them) are refused unless --overwrite, and then
  `clear_output` removes OUT, its summary and parts of other settings - those names only
  (unfinished parts of the same settings are continued, with or without --overwrite).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from sicog.data.records import iter_json_objects
from sicog.stages.sampling.config import SampleConfig
from sicog.utils.io import SicogError, file_fingerprint, write_json
from sicog.utils.lock import as_recorded, check_finished, check_writable, settings_diff
from sicog.utils.paths import check_outputs_apart
from sicog.utils.shards import parts_dir

logger = logging.getLogger(__name__)


def summary_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".summary.json")


def run_settings(cfg: SampleConfig) -> dict:
    """What decides the candidates, with fingerprints of the data file and the model's files."""
    from sicog.utils.io import model_files_fingerprint

    want = cfg.determining(file_fingerprint(cfg.data))
    want["model_files"] = model_files_fingerprint(cfg.model) if cfg.backend == "hf" else None
    return as_recorded(want)


def _check_run_manifest(cfg: SampleConfig, want: dict) -> None:
    d = parts_dir(cfg.out)
    d.mkdir(parents=True, exist_ok=True)
    manifest = d / "run.json"
    if manifest.exists():
        have = json.loads(manifest.read_text(encoding="utf-8"))
        if have != want:
            raise SicogError(f"{d}: unfinished parts of a run with other settings ({settings_diff(have, want)}); "
                             f"rerun with the earlier settings, pass --overwrite, or delete {d} to start over")
    else:
        write_json(manifest, want)


def claim_output(cfg: SampleConfig) -> None:
    """--out apart from every input and writable (before anything is read or written)."""
    out = Path(cfg.out)
    inputs = {"--data": cfg.data, "--image-folder": cfg.image_folder}
    if cfg.backend == "hf" or Path(cfg.model).exists():
        inputs["--model"] = cfg.model
    check_outputs_apart({"--out": out, "--out (its summary)": summary_path(out), "--out (its parts)": parts_dir(out)},
                        inputs)
    check_writable(out, "--out", "file")


def finished_summary(cfg: SampleConfig, want: dict) -> dict | None:
    """The summary of a finished OUT with these settings (then there is nothing to do); None when
    there is work. Other settings are refused unless --overwrite."""
    out, summary = Path(cfg.out), summary_path(cfg.out)
    if parts_dir(out).is_dir() or not out.exists():
        return None  # unfinished parts (checked against run.json) or nothing yet
    try:
        old = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    recorded = old.get("settings") if isinstance(old, dict) else None
    return old if check_finished(out, recorded, want, summary, cfg.overwrite) else None


def clear_output(cfg: SampleConfig, want: dict) -> None:
    """--overwrite: remove what --out holds of other settings - OUT and its summary (a finished output
    of the same settings returned earlier), parts whose run.json differs - those names only."""
    out, d = Path(cfg.out), parts_dir(cfg.out)
    try:
        stale_parts = json.loads((d / "run.json").read_text(encoding="utf-8")) != want
    except (OSError, ValueError):
        stale_parts = d.is_dir()
    if out.exists() or summary_path(out).exists() or stale_parts:
        logger.info("--overwrite: removing %s, its summary and its parts", out)
        out.unlink(missing_ok=True)
        summary_path(out).unlink(missing_ok=True)
        shutil.rmtree(d, ignore_errors=True)


def read_candidates(out: str | os.PathLike):
    """The candidate records of a sampling's OUT, in file order (errors name file:line)."""
    for _line, rec in iter_json_objects(out):
        yield rec
