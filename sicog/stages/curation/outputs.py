"""The outputs of `sicog curate`: claimed before any work, recorded when finished.

- `claim_outputs`: --out and --report-dir (and OUT's summary and parts) apart from
  every input (--candidates, an encoder folder) and writable - before anything is read.
- `finished_settings`: what decides the outputs (`CurateConfig.run_key`: the candidates' sha256
  and the scoring settings) plus where the report goes and, for an encoder folder,
  its files' size and time. `OUT.summary.json` records them with the stats and the files written
  (rank 0 writes it just before OUT, so an OUT always has its summary).
- A finished OUT with the same settings means nothing to do; other settings, or an OUT without
  a summary recording them, are refused unless --overwrite (sicog.utils.resumable), and then
  `clear_outputs` removes OUT, its summary, the report files (stats.json, best_scores.png) its
  recorded settings name, and parts of other settings - those files only.
- `read_curated` / `read_stats`: what other commands read of a finished curation: its records,
  and the stats its summary recorded.
"""

from __future__ import annotations

import os
from pathlib import Path

from sicog.data.records import iter_json_objects
from sicog.stages.curation.config import CurateConfig
from sicog.utils import resumable
from sicog.utils.lock import as_recorded, check_writable
from sicog.utils.paths import check_outputs_apart
from sicog.utils.resumable import summary_path
from sicog.utils.shards import parts_dir


def _encoder_folder(cfg: CurateConfig) -> str | None:
    spec = cfg.encoder.partition(":")[2] if cfg.encoder.startswith("nv-embed-v2:") else cfg.encoder
    return spec if spec and Path(spec).is_dir() else None


def claim_outputs(cfg: CurateConfig) -> None:
    """Every output apart from every input, and writable (checks only)."""
    outputs = {"--out": cfg.out, "--out (its summary)": summary_path(cfg.out), "--out (its parts)": parts_dir(cfg.out),
               "--report-dir": cfg.report_dir}
    check_outputs_apart(outputs, {"--candidates": cfg.candidates, "--encoder": _encoder_folder(cfg)})
    check_writable(cfg.out, "--out", "file")
    if cfg.report_dir:
        check_writable(cfg.report_dir, "--report-dir", "dir")


def finished_settings(cfg: CurateConfig) -> dict:
    """See the module docstring (as it reads back from JSON)."""
    from sicog.utils.io import model_files_fingerprint

    folder = _encoder_folder(cfg)
    return as_recorded({**cfg.run_key(),
                        "report_dir": str(Path(cfg.report_dir).resolve()) if cfg.report_dir else None,
                        "encoder_files": model_files_fingerprint(folder) if folder else None})


def clear_outputs(cfg: CurateConfig, run_key: dict) -> None:
    """--overwrite: OUT, its summary and parts of other settings (sicog.utils.resumable.clear), and
    the report files (stats.json, best_scores.png) the old summary's settings name."""
    from sicog.stages.curation.report import HISTOGRAM_NAME, STATS_NAME

    def made(old: dict) -> list[str]:
        report = (old.get("settings") or {}).get("report_dir")
        return [str(Path(report) / n) for n in (STATS_NAME, HISTOGRAM_NAME)] if report else []

    resumable.clear(cfg.out, run_key, made)


def read_curated(out: str | os.PathLike):
    """The training records of a curation's OUT, in file order (errors name file:line)."""
    for _line, rec in iter_json_objects(out):
        yield rec


def read_stats(out: str | os.PathLike) -> dict | None:
    """The stats a finished curation recorded in OUT.summary.json (None: no summary)."""
    return resumable.read_summary(out).get("stats") if summary_path(out).is_file() else None
