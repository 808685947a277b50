"""The report of a pipeline run: collect (report.json), markdown (report.md), plots (PNG)."""

from __future__ import annotations

import logging
from pathlib import Path

from sicog.pipeline.report.collect import build_report, curation_score_lists
from sicog.pipeline.report.markdown import render_markdown
from sicog.pipeline.report.plots import make_plots
from sicog.utils.io import atomic_write, write_json

log = logging.getLogger(__name__)

__all__ = ["build_report", "render_markdown", "make_plots", "write_report_files", "write_pipeline_report"]


def write_report_files(report: dict, out_dir: Path, title: str, score_lists: dict[str, list[float]],
                       notes: list[str] | None = None, sections: list[str] | None = None) -> dict:
    """Plots, report.json and report.md of a collected report into out_dir; returns the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report["plots"] = make_plots(report, out_dir, score_lists)
    write_json(out_dir / "report.json", report)
    with atomic_write(out_dir / "report.md") as fh:
        fh.write(render_markdown(report, title, notes, sections))
    log.info("report: %s", out_dir / "report.md")
    return report


def write_pipeline_report(planner, engine, out_dir: Path, extra: dict | None = None,
                          notes: list[str] | None = None) -> dict:
    """report.json, report.md and the plots of a `sicog run` into out_dir; returns the report."""
    report = build_report(planner, engine, out_dir, extra)
    return write_report_files(report, out_dir, f"sicog run: {planner.cfg.name}", curation_score_lists(planner),
                              notes)
