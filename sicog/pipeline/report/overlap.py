"""The contamination audit of a `sicog run`: each arm's stage-1.5 data against the run's
benchmarks (the evaluation benchmark and `evaluation.benchmarks`), by `sicog data overlap`
(sicog.data.overlap), into WORK_DIR/overlap/<arm>/; the counts go into the report.

It runs when the report is written (`evaluation.overlap`, default on); a folder that already
holds the audit of the same inputs and settings is reused, so a rerun costs nothing. A failure
is reported in its place, never fatal to the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _benchmarks(planner) -> list[str]:
    from sicog.eval.benchmark_list import parse_benchmarks

    _, bench = planner.benchmark()
    specs = [bench] if bench else []
    for entry in parse_benchmarks(planner.cfg.evaluation.benchmarks, "evaluation.benchmarks").values():
        specs.append(str(entry["tsv"]))
    return specs


def stage15_overlap(planner, root: Path) -> dict:
    """{arm: summary counts (or {"error"})} for every arm with stage-1.5 data."""
    from sicog.data.overlap import OverlapConfig, run_overlap
    from sicog.utils.io import SicogError

    if not getattr(planner.cfg.evaluation, "overlap", True):
        return {}
    out: dict = {}
    try:
        benchmarks = _benchmarks(planner)
    except SicogError as e:
        return {"error": str(e)}
    if not benchmarks:
        return {}
    for (r, arm), step in sorted(planner.pretrain_steps.items()):
        sources = [s for s in step.params["train"]["data"]["sources"] if Path(s["path"]).is_file()]
        groups: dict = {}   # one audit per image folder (text-only sources join the first)
        for s in sources:
            groups.setdefault(s.get("image_folder"), []).append(s["path"])
        if None in groups and len(groups) > 1:
            texts = groups.pop(None)
            groups[next(iter(groups))] += texts
        for k, (folder, paths) in enumerate(groups.items()):
            name = f"r{r}_{arm}" + (f"_{k}" if len(groups) > 1 else "")
            dest = planner.work / "overlap" / name
            try:
                summary = run_overlap(OverlapConfig(data=paths, benchmark=benchmarks, out=str(dest), image_folder=folder,
                                                    overwrite=True, progress=False))
            except SicogError as e:
                out[name] = {"error": str(e)}
                continue
            out[name] = {"folder": str(dest.relative_to(root)) if dest.is_relative_to(root) else str(dest),
                         "records": summary["records"], "benchmarks": summary["benchmarks"]}
    return out
