"""`sicog demo`: the whole SICOG loop on the synthetic world, with ablation arms and a report.

    sicog world  -> DIR/world                      (a step of its own: skipped when complete)
    sicog run sicog/demo/presets/<preset>.yaml     -> DIR/run (all steps, manifests, checkpoints)
    DIR/report.json, DIR/report.md, DIR/*.png

The arms are entries of the arms table (sicog/pipeline/arms.py) named in the preset's `arms:`; they
share the base model, the stage-2 data and every budget and differ only in their stage-1.5 data:
tiny: `base` (no stage 1.5), `sicog` (curated CoD + CoT), `uncurated_valid` (a random parseable
candidate of the items curation kept), `oracle` (ground-truth CoD / CoT of the same items);
controls: `base`, `base_long` (as many more stage-2 steps as stage 1.5 adds), `oracle`,
`oracle_noised` (the truth with as many wrong counts / answers as the curated labels), `annotated`
(stage 1.5 on the warm-up annotations alone); mechanism: the arms of both in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from sicog.config import ARCHS, TinyModelConfig
from sicog.pipeline.checks import check_settings, check_work_dir_apart
from sicog.pipeline.cli import load_pipeline, run_pipeline
from sicog.pipeline.config import LauncherConfig, expand_env
from sicog.pipeline.engine import Engine
from sicog.pipeline.launch import command_action, describe_command, python_action
from sicog.pipeline.step import Step
from sicog.utils.io import SicogError

log = logging.getLogger(__name__)

PRESETS = ("smoke", "tiny", "controls", "mechanism")

DESCRIPTION = """Run the whole SICOG loop on the built-in synthetic world (no download, no GPU):
world -> stand-in CLIP/LLM -> stage 1 -> base SFT -> warm-up (CoD, CoT) -> sample -> curate ->
stage 1.5 per arm -> stage 2 SFT -> evaluate -> report.
smoke: a few minutes, checks that everything runs (every arm); tiny: the measured comparison (base, sicog,
uncurated_valid, oracle; 2,000 questions; tens of minutes on 2 CPU cores); controls: the controls of the
mechanism on the tiny world (base, base_long, oracle, oracle_noised, annotated); mechanism: the arms of
both in one run (the pre-registered study, docs/demo_findings.md).
Re-running with the same --out skips what is complete and resumes what was interrupted.
Examples:
  sicog demo --preset tiny --out runs/demo
  sicog demo --preset smoke --out /tmp/smoke --set rounds=2"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=PRESETS, default="tiny",
                   help="smoke: quick check that the loop runs; tiny: the measured comparison (default); "
                        "controls: the control arms on the tiny world; mechanism: every arm of tiny and controls "
                        "in one run")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder: world/, run/, report.json, report.md, plots (default runs/demo_<preset>)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the world, sampling and training (default 0); the stand-in CLIP/LLM "
                   "are shared by all seeds, like pretrained models (standins.seed)")
    p.add_argument("--config", default=None, metavar="PIPELINE.yaml",
                   help="a pipeline YAML instead of the preset's sicog/demo/presets/<preset>.yaml")
    p.add_argument("--arch", choices=ARCHS, default="llava",
                   help="architecture of every trained model: llava (low resolution) or uhd (LLaVA-UHD slicing, "
                        "docs/uhd.md; one resampler query per patch of the stand-in tower's own size)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pipeline config value, e.g. rounds=2 (repeatable)")


def arch_overrides(cfg, arch: str) -> list[str]:
    """`--set` overrides that give every training stage of `cfg` the architecture `arch`."""
    if arch == "llava":
        return []
    tiny = {**dataclasses.asdict(TinyModelConfig()), **(cfg.standins.get("tiny") or {})}
    side = tiny["image_size"] // tiny["patch_size"]  # the stand-in tower's own patch grid
    sets = []
    for f in dataclasses.fields(cfg.stages):
        # stages built from the stand-ins' parts: their LM's small vocabulary has no rows 13 / 29892
        # of Qwen2's to start the separators from (model.uhd.separator_init_ids)
        sets += [f"stages.{f.name}.set.model.arch={arch}", f"stages.{f.name}.set.model.uhd.num_queries={side * side}",
                 f"stages.{f.name}.set.model.uhd.separator_init_ids=[]"]
    if cfg.post_training.method == "dpo":  # DPO continues from the arms' checkpoints: the same arch
        sets.append(f"post_training.dpo.set.model.arch={arch}")
    return sets + ["stages.align.set.model.uhd.never_split=true"]  # the authors align on the overview alone


def preset_config_path(preset: str) -> Path:
    """sicog/demo/presets/<preset>.yaml (shipped with the package)."""
    path = Path(__file__).resolve().parent / "presets" / f"{preset}.yaml"
    if not path.is_file():
        raise SicogError(f"--preset {preset}: {path} not found (pass --config PIPELINE.yaml)")
    return path


def world_step(out: Path, seed: int, world_args: list[str], launcher: LauncherConfig) -> Step:
    """`sicog world --out DIR/world --seed N …` as an engine step (skipped when complete)."""
    world = out / "world"
    argv = ["world", "--out", str(world), "--seed", str(seed), "--no-progress", *world_args]

    return Step(name="world", kind="world", inputs={}, outputs={"manifest": str(world / "manifest.json")},
                params={"argv": argv}, action=command_action(argv, launcher), work_dir=str(out / "run" / "world_log"),
                role="world", describe=describe_command(launcher, argv))


def probe_step(out: Path, n_images: int, threads: int | None) -> Step:
    """The round monitor's probe (sicog.demo.world.probe) as an engine step: DIR/probe, apart from the world."""
    world, folder = out / "world", out / "probe"

    def write(step):
        from sicog.demo.world.probe import write_probe

        return write_probe(world, folder, n_images)

    return Step(name="probe", kind="world", inputs={"world": str(world / "manifest.json")},
                outputs={"probe": str(folder / "probe.jsonl")}, params={"images": n_images},
                action=python_action(write, "probe: sicog.demo.world.probe.write_probe", threads),
                work_dir=str(out / "run" / "probe_log"), role="probe_data",
                describe=f"{n_images} probe questions drawn apart from the world (monitor.probe)")


def run_demo(preset: str, out: str | Path, seed: int = 0, config: str | None = None,
             overrides: list[str] | None = None, echo=print, arch: str = "llava") -> dict:
    """Run the demo into `out`; returns the report mapping."""
    t0 = time.time()
    out = Path(out).resolve()
    cfg_path = Path(config) if config else preset_config_path(preset)
    sets = [f"work_dir={out / 'run'}", f"data.world={out / 'world'}", f"seed={seed}", *(overrides or [])]
    cfg = load_pipeline(str(cfg_path), sets)
    if arch != "llava":
        cfg = load_pipeline(str(cfg_path), [*sets[:3], *arch_overrides(cfg, arch), *sets[3:]])
    probe = cfg.demo.probe_images > 0 and cfg.monitor.enabled and cfg.monitor.probe is None
    if probe:  # the round monitor's probe, written beside the world (a --set monitor.probe wins)
        sets = [*sets[:3], f"monitor.probe={out / 'probe' / 'probe.jsonl'}",
                f"monitor.probe_image_folder={out / 'probe'}", *sets[3:]]
        cfg = load_pipeline(str(cfg_path), [*sets[:5], *arch_overrides(cfg, arch), *sets[5:]])
    # every setting, and work_dir apart from the world, before the world is written
    check_settings(cfg, cfg_path.parent)
    check_work_dir_apart(Path(expand_env(cfg.work_dir, "work_dir")).resolve(),
                         {"data.world": str(Path(expand_env(cfg.data.world, "data.world") or out / "world").resolve())})
    world_engine = Engine(out / "run", echo=echo)
    world_engine.run([world_step(out, seed, cfg.demo.world_args, cfg.launcher_for("data"))] +
                     ([probe_step(out, cfg.demo.probe_images, cfg.launcher_for("data").threads)] if probe else []))
    planner, engine = run_pipeline(cfg, echo=echo, write_report=False, config_dir=cfg_path.parent)

    from sicog.demo.report import write_demo_report

    report = write_demo_report(planner, engine, out, preset=preset, seed=seed, wall_seconds=time.time() - t0,
                               world_engine=world_engine)
    echo(f"sicog demo ({preset}): {time.time() - t0:.0f} s; report: {out / 'report.md'}")
    for name, arm in report["arms"].items():
        b = arm.get("benchmark", {})
        c = arm.get("captions", {})
        if b:
            echo(f"  {name:<10} accuracy {100 * (b.get('accuracy') or 0):5.1f}%  "
                 f"object recall {100 * (c.get('object_recall') or 0):5.1f}%  "
                 f"hallucination {100 * (c.get('hallucination_rate') or 0):5.1f}%")
    return report


def run(args: argparse.Namespace) -> int:
    out = args.out or f"runs/demo_{args.preset}"
    run_demo(args.preset, out, seed=args.seed, config=args.config, overrides=args.overrides, arch=args.arch)
    return 0
