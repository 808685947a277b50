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

from sicog.config import (
    ConfigError,
    apply_overrides,
    config_from_mapping,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)
from sicog.pipeline.checks import check_step_inputs
from sicog.pipeline.config import PipelineConfig
from sicog.pipeline.engine import Engine
from sicog.pipeline.estimate import EstimateOptions, estimate_plan
from sicog.pipeline.estimate_table import render
from sicog.pipeline.extends import extended_mapping
from sicog.pipeline.plan import Planner, build_plan
from sicog.pipeline.sweep import parse_sweeps, plan_sweep
from sicog.utils.io import write_json
from sicog.utils.secrets import mask_secrets

log = logging.getLogger(__name__)

DESCRIPTION = """Run the SICOG loop from one pipeline YAML: [stand-ins] -> stage 1 align -> base SFT ->
warm-up (CoD, CoT) -> sample -> curate -> stage 1.5 pre-train per arm -> stage 2 SFT -> evaluate,
repeated for `rounds`. Re-running the same command skips completed steps (their manifests match),
resumes an interrupted one and redoes steps whose inputs or settings changed.
Examples:
  sicog run sicog/demo/presets/smoke.yaml --set data.world=runs/world --set work_dir=runs/smoke
  sicog run configs/pipeline/qwen2_7b.yaml --dry-run
  sicog run PIPELINE.yaml --sweep curation.captions.threshold=0.8,0.9,0.95 --sweep sampling.captions.n=4,6
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
    p.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2",
                   help="run the pipeline for every value of a dotted key (repeatable: the cross product), "
                   "each step once however many points read it; sampling.<task>.n values are served by the "
                   "largest; one table over the points in sweep.md (also the YAML's `sweep:` mapping; "
                   "docs/ablations.md)")


def load_pipeline(path: str | None, overrides: list[str] | None = None, sweep_handled: bool = False) -> PipelineConfig:
    """Load and validate a pipeline YAML (errors name the file and the dotted key).

    A YAML with `extends: OTHER.yaml` (relative to its folder; `--set extends=PATH`, relative to the
    working folder, replaces it) is OTHER.yaml with this file's keys merged on top: mappings key by
    key, anything else (lists included) replaced. The ablation configs (configs/pipeline/ablations/)
    hold only what makes their ablation this way. A `sweep:` mapping is run by `sicog run`
    (run_sweep, which loads each point with `sweep_handled`); any other caller gets an error rather
    than one point of it.
    """
    if path is None or not Path(path).is_file():
        return load_config(PipelineConfig, path, overrides)
    overrides = list(overrides or [])
    chosen = [o for o in overrides if o.split("=", 1)[0].strip() == "extends"]
    rest = [o for o in overrides if o not in chosen]
    data = extended_mapping(Path(path), parse_override(chosen[-1])[1] if chosen else None)
    if data.pop("sweep", None) is not None and not sweep_handled:
        raise ConfigError(f"{path}: key sweep: this file is a sweep; run it with `sicog run {path}`")
    label = str(path) + (" (with --set overrides)" if overrides else "")
    return config_from_mapping(PipelineConfig, apply_overrides(data, rest) if rest else data, label)


def pipeline_sweep(path: str, overrides: list[str] | None = None):
    """The YAML's `sweep:` mapping (after `extends`), or None."""
    chosen = [o for o in overrides or [] if o.split("=", 1)[0].strip() == "extends"]
    return extended_mapping(Path(path), parse_override(chosen[-1])[1] if chosen else None).get("sweep")


def _run_steps(engine: Engine, steps, parallel: int) -> None:
    """Run the steps; SIGTERM stops the running command too (as Ctrl-C does)."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        engine.run(steps, parallel=parallel)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(path: str, overrides: list[str], sweeps: dict, dry_run: bool = False, echo=print,
              write_report: bool = True, config_dir: str | Path | None = None):
    """Plan the sweep's points together (sicog.pipeline.sweep) and run (or print) its distinct steps."""
    sweep = plan_sweep(sweeps, lambda sets: load_pipeline(path, [*overrides, *sets], sweep_handled=True), config_dir)
    check_step_inputs(sweep.steps)
    engine = Engine(sweep.work, echo=echo)
    echo(f"sweep over {', '.join(sweep.keys)}: {len(sweep.points)} points, {len(sweep.steps)} distinct steps "
         f"({sum(len(p.steps) for p in sweep.points)} if each point ran alone) in {sweep.work}")
    for point in sweep.points:
        echo(f"  {point.tag}: {len(point.steps)} steps" +
             (f", {len(point.derived)} sampling step(s) served by a larger N" if point.derived else ""))
    if dry_run:
        engine.run(sweep.steps, dry_run=True)
        echo("dry run: every point's config is valid, every input exists or is written by an earlier step; "
             "nothing was run or written")
        return sweep, engine
    sweep.work.mkdir(parents=True, exist_ok=True)
    # the settings that made each point's outputs
    write_json(sweep.work / "sweep" / "points.json", [{"values": p.values, "config": mask_secrets(config_to_dict(
        p.planner.cfg))} for p in sweep.points])
    t0 = time.time()
    _run_steps(engine, sweep.steps, sweep.points[0].planner.cfg.parallel_steps)
    echo(f"sweep: finished in {time.time() - t0:.1f}s ({sweep.work})")
    if write_report:
        from sicog.pipeline.report.sweep import write_sweep_report

        write_sweep_report(sweep, engine, sweep.work)
        echo(f"sweep table: {sweep.work / 'sweep.md'}")
    return sweep, engine


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
    t0 = time.time()
    _run_steps(engine, planner.steps, cfg.parallel_steps)
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
    sweeps = parse_sweeps(args.sweep, pipeline_sweep(args.config, args.overrides) if Path(args.config).is_file() else None)
    if sweeps:
        if args.estimate:
            raise ConfigError("--estimate with --sweep: estimate one point at a time (--set KEY=VALUE)")
        run_sweep(args.config, args.overrides, sweeps, dry_run=args.dry_run, write_report=not args.no_report,
                  config_dir=Path(args.config).parent)
        return 0
    cfg = load_pipeline(args.config, args.overrides)
    if args.estimate:  # implies --dry-run: an estimate never runs or writes anything
        options = estimate_options(args)
        planner = build_plan(cfg, Path(args.config).parent, allow_missing=True)
        print(f"pipeline {cfg.name}: {len(planner.steps)} steps (estimate; nothing runs)")
        print(render(estimate_plan(planner, options)))
        return 0
    run_pipeline(cfg, dry_run=args.dry_run, write_report=not args.no_report, config_dir=Path(args.config).parent)
    return 0
