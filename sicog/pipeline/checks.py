"""Plan-time checks of `sicog run`: everything a dry run can know is wrong fails before any step runs.

- `check_settings(cfg, config_dir)`: the checks that need no data — the pipeline's own settings
  (each field's choices and range, then `PipelineConfig.validate`), every stage's TrainConfig, every sampling / curation / evaluation config — each
  with placeholder paths. Front ends that write data before planning (`sicog demo` writes its world
  first) call it before they write anything; the Planner calls it first, then checks every step's
  real config again when it builds the step.
- `missing_input(path, steps)`: whether an input neither exists nor is written by an earlier step.
- `check_step_inputs(steps)`: every step's inputs exist or are outputs of an earlier step.
- `check_work_dir_apart(work, inputs)`: the work folder is neither an input, nor inside one, nor
  around one (inputs are never written or removed by a run).
"""

from __future__ import annotations

from pathlib import Path

from sicog.config import check_config
from sicog.eval.config import EvaluateConfig
from sicog.pipeline.actions import check_command_config, command_config, train_config
from sicog.pipeline.config import PipelineConfig
from sicog.pipeline.step import Step
from sicog.pipeline.tasks import TASKS
from sicog.stages.curation.config import CurateConfig
from sicog.stages.sampling.config import SampleConfig
from sicog.utils.io import SicogError
from sicog.utils.paths import check_outputs_apart

_STAGES = (("align", "stage1_align"), ("sft", "stage2_sft"), ("warmup_perception", "stage0_warmup_perception"),
           ("warmup_reasoning", "stage0_warmup_reasoning"), ("pretrain", "stage15_pretrain"))


def check_settings(cfg: PipelineConfig, config_dir: str | Path | None = None) -> None:
    """Validate every setting of the pipeline that needs no data (see the module docstring)."""
    check_config(cfg)  # every setting's choices and range (sicog.config), then PipelineConfig.validate
    config_dir = Path(config_dir).resolve() if config_dir else Path.cwd()
    placeholder = "<set by the pipeline>"
    for key, stage in _STAGES:
        train_config(getattr(cfg.stages, key), stage=stage, model={"checkpoint": placeholder},
                     sources=[{"path": placeholder}], output_dir=placeholder, seed=cfg.seed,
                     where=f"stages.{key}", config_dir=config_dir)
    for task in TASKS.values():
        sample = command_config(SampleConfig, getattr(cfg.sampling, task.name), model=placeholder, data="<records>",
                                out="<candidates>", mode=task.sample_mode)
        check_command_config(sample, f"sampling.{task.name}")
        curate = command_config(CurateConfig, getattr(cfg.curation, task.name), candidates="<candidates>",
                                out="<curated>", task=task.curate_task)
        check_command_config(curate, f"curation.{task.name}")
    if cfg.evaluation.enabled:
        evaluate = command_config(EvaluateConfig, cfg.evaluation, model=placeholder,
                                  benchmark=cfg.evaluation.benchmark or "<benchmark>", out="<result>")
        check_command_config(evaluate, "evaluation")


def _written_by(path: Path, written: set[Path]) -> bool:
    """Whether `path` or a folder holding it is in `written` (resolved paths)."""
    return path in written or any(parent in written for parent in path.parents)


def _resolved_outputs(steps: list[Step]) -> set[Path]:
    return {Path(out).resolve() for s in steps for out in s.outputs.values()}


def missing_input(path: str, steps: list[Step], written: set[Path] | None = None) -> bool:
    """True when `path` does not exist and no step in `steps` writes it (or a folder holding it);
    `written`: those steps' outputs, resolved, when the caller keeps them (linear in the steps)."""
    if Path(path).exists():
        return False
    return not _written_by(Path(path).resolve(), _resolved_outputs(steps) if written is None else written)


def check_step_inputs(steps: list[Step]) -> None:
    """Every step's inputs exist now or are written by an earlier step (a dry run's last check)."""
    written: set[Path] = set()
    for step in steps:
        for key, path in step.inputs.items():
            if missing_input(path, [], written):
                raise SicogError(f"step {step.name}: input {key} {path} does not exist and no earlier step "
                                 "writes it")
        written |= _resolved_outputs([step])


def check_work_dir_apart(work: Path, inputs: dict[str, str | None],
                         benchmark: tuple[str, str | None] | None = None) -> None:
    """work_dir must not be, be inside or contain any input (sicog.utils.paths.check_outputs_apart).

    `inputs`: config key -> path; `benchmark`: (its key, the benchmark), a `world:DIR` benchmark
    standing for DIR. A run may live under the image root (it writes no image names there), so
    `data.image_folder` only counts when it is not an ancestor of work_dir.
    """
    paths = {k: v for k, v in inputs.items() if k != "data.benchmark" and v}
    if benchmark and benchmark[1]:
        key, bench = benchmark
        paths[key] = bench[len("world:"):] if bench.startswith("world:") else bench
    images = paths.get("data.image_folder")
    if images and Path(images).resolve() in work.parents:
        del paths["data.image_folder"]
    check_outputs_apart({"work_dir": str(work)}, paths)
