"""report.json / report.md / plots of `sicog demo`: the pipeline's report plus the demo's own parts.

Beside what every `sicog run` reports, the demo adds the world step, the stand-ins' summary, the
quality of the stage-1.5 labels against the world's truth (sicog.demo.label_quality) and the list of
"departures from the real recipe", which live in the preset YAML (`demo.notes`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from sicog.demo.label_quality import label_quality, label_quality_markdown
from sicog.pipeline.report import build_report, write_report_files
from sicog.pipeline.report.collect import curation_score_lists, step_rows

log = logging.getLogger(__name__)


def write_demo_report(planner, engine, out: Path, *, preset: str, seed: int, wall_seconds: float,
                      world_engine=None) -> dict:
    """Write the demo's report.json / report.md / plots into `out`; returns the report."""
    out = Path(out)
    extra = {"preset": preset, "seed": seed, "wall_seconds": round(wall_seconds, 1)}
    report = build_report(planner, engine, out, extra)
    if world_engine is not None:
        report["steps"] = step_rows(world_engine) + report["steps"]
    # what the results cost, even when this invocation skipped every step (a re-run rewrites the report)
    report["steps_seconds"] = round(sum(s.get("seconds") or 0 for s in report["steps"]), 1)
    standins = next((s for s in planner.steps if s.kind == "standins"), None)
    if standins is not None and (Path(standins.work_dir) / "standins.json").is_file():
        report["standins"] = json.loads((Path(standins.work_dir) / "standins.json").read_text(encoding="utf-8"))
    sections: list[str] = []
    if planner.data.world:
        try:
            report["label_quality"] = label_quality(planner, planner.data.world)
            sections = label_quality_markdown(report["label_quality"])
        except (OSError, KeyError, ValueError) as e:  # a report without this table beats no report
            log.warning("label quality not computed: %s", e)
    return write_report_files(report, out, f"sicog demo ({preset}, seed {seed})", curation_score_lists(planner),
                              notes=list(planner.cfg.demo.notes), sections=sections)
