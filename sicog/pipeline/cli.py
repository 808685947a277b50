"""`sicog run PIPELINE.yaml`: the whole SICOG loop from one YAML, resumable, with rounds.

The steps (see sicog.pipeline.plan) run the project's own commands (`sicog train`, `sample`,
`curate`, `evaluate`), each writing a manifest under `<work_dir>/manifests/`; a re-run skips what
is up to date and resumes what was interrupted (sicog.pipeline.engine). At the end the run's
report (report.json, report.md, plots) is written to the work folder (sicog.pipeline.report.collect).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import time
from pathlib import Path

from sicog.config import load_config, save_config
from sicog.pipeline.config import PipelineConfig
from sicog.pipeline.engine import Engine
from sicog.pipeline.estimate import EstimateOptions, estimate_plan, render
from sicog.pipeline.plan import Planner, build_plan

log = logging.getLogger(__name__)

DESCRIPTION = """Run the SICOG loop from one pipeline YAML: [stand-ins] -> stage 1 align -> base SFT ->
warm-up (CoD, CoT) -> sample -> curate -> stage 1.5 pre-train per arm -> stage 2 SFT -> evaluate,
repeated for `rounds`. Re-running the same command skips completed steps (their manifests match),
resumes an interrupted one and redoes steps whose inputs or settings changed.
Examples:
  sicog run sicog/demo/presets/smoke.yaml --set data.world=runs/world --set work_dir=runs/smoke
  sicog run configs/pipeline/qwen2_7b.yaml --dry-run
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="pipeline YAML (see configs/pipeline/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pipeline config value by dotted key, e.g. rounds=2 or "
                   "stages.sft.set.training.max_steps=50 (repeatable; parsed as YAML, type-checked)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate the config (every step's full config, every input path, work_dir apart "
                   "from the inputs) and print the plan (each step, its command, outputs and whether it "
                   "would run, resume or be skipped) without running or writing anything")
    p.add_argument("--no-report", action="store_true", help="do not write report.json/report.md/plots")
    p.add_argument("--estimate", action="store_true",
                   help="print per step its tokens, model FLOPs, GPU-hours, per-GPU memory and API cost, and the "
                   "loop's total (docs/estimate.md); implies --dry-run (nothing runs). Inputs may be absent: the "
                   "YAML's `estimate:` section states their sizes")
    for f in dataclasses.fields(EstimateOptions):
        p.add_argument("--" + f.name.replace("_", "-"), dest=f"estimate_{f.name}", default=f.default,
                       metavar=f.name.split("_")[-1].upper(), type=type(f.default), choices=f.metadata.get("choices"),
                       help=f"--estimate: {EstimateOptions.HELP[f.name]} (default: %(default)s)")


def load_pipeline(path: str | None, overrides: list[str] | None = None) -> PipelineConfig:
    """Load and validate a pipeline YAML (errors name the file and the dotted key)."""
    return load_config(PipelineConfig, path, overrides)


def run_pipeline(cfg: PipelineConfig, dry_run: bool = False, echo=print, write_report: bool = True,
                 config_dir: str | Path | None = None) -> tuple[Planner, Engine]:
    """Plan and run (or with dry_run only print) the pipeline; returns (planner, engine)."""
    planner = build_plan(cfg, config_dir)
    engine = Engine(planner.work, echo=echo)
    if dry_run:
        echo(f"pipeline {cfg.name}: {len(planner.steps)} steps in {planner.work}")
        engine.run(planner.steps, dry_run=True)
        echo("dry run: every step's config is valid, every input exists or is written by an earlier step, "
             "work_dir is apart from the inputs; nothing was run or written")
        return planner, engine
    planner.work.mkdir(parents=True, exist_ok=True)
    save_config(cfg, planner.work / "pipeline.yaml")
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # SIGTERM -> KeyboardInterrupt: the running command is stopped too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.time()
    try:
        engine.run(planner.steps, parallel=cfg.parallel_steps)
    finally:
        signal.signal(signal.SIGTERM, previous)
    wall = time.time() - t0
    echo(f"pipeline {cfg.name}: finished in {wall:.1f}s ({planner.work})")
    if write_report:
        from sicog.pipeline.report import write_pipeline_report

        write_pipeline_report(planner, engine, Path(planner.work), extra={"wall_seconds": round(wall, 1)},
                              notes=cfg.demo.notes or None)
    return planner, engine


def estimate_options(args: argparse.Namespace) -> EstimateOptions:
    """The --estimate flags as EstimateOptions, checked against the fields' choices and ranges."""
    from sicog.config import config_from_mapping

    values = {f.name: getattr(args, f"estimate_{f.name}") for f in dataclasses.fields(EstimateOptions)}
    return config_from_mapping(EstimateOptions, values, "sicog run --estimate flags")


def run(args: argparse.Namespace) -> int:
    cfg = load_pipeline(args.config, args.overrides)
    if args.estimate:  # implies --dry-run: an estimate never runs or writes anything
        options = estimate_options(args)
        planner = build_plan(cfg, Path(args.config).parent, allow_missing=True)
        print(f"pipeline {cfg.name}: {len(planner.steps)} steps (estimate; nothing runs)")
        print(render(estimate_plan(planner, options)))
        return 0
    run_pipeline(cfg, dry_run=args.dry_run, write_report=not args.no_report, config_dir=Path(args.config).parent)
    return 0
