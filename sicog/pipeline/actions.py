"""Step actions of `sicog run`: every command step writes its typed config file and runs it.

A training step writes `<step folder>/train.yaml` (a validated TrainConfig) and runs `sicog train`
on it (sicog.pipeline.launch); the stage YAML gives the hyper-parameters, the pipeline owns the
model source, the data sources and the output folder. Sample / curate / evaluate steps write
`sample.yaml` / `curate.yaml` / `evaluate.yaml` the same way (`config_command_action`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from pathlib import Path

import yaml

from sicog.config import (
    ConfigError,
    TrainConfig,
    config_from_mapping,
    config_to_dict,
    merge_mapping,
    save_config,
)
from sicog.config_flags import check_config
from sicog.pipeline.config import LauncherConfig, PipelineConfig, StageSpec
from sicog.pipeline.launch import run_command
from sicog.pipeline.step import Step, StepFailed
from sicog.utils.io import SicogError
from sicog.utils.secrets import mask_secrets
from sicog.utils.yaml_files import read_yaml

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- train configs
_MODEL_SOURCE_KEYS = ("preset", "checkpoint", "vision_tower", "language_model", "mm_projector")


def train_config(spec: StageSpec, *, stage: str, model: dict, sources: list[dict], output_dir: str,
                 seed: int, where: str, config_dir: Path | None = None, cls: type = TrainConfig) -> dict:
    """A validated TrainConfig (as a mapping) for one stage of the pipeline.

    The stage's YAML and `set` give the hyper-parameters; the pipeline owns the model source, the
    data sources and the output folder (any values for those in the YAML are replaced). A relative
    `spec.config` is relative to `config_dir` (the pipeline YAML's folder). `cls`: the stage's
    config class (`sicog dpo` stages: DPOConfig).
    """
    raw: dict = {}
    if spec.config:
        path = Path(spec.config)
        if not path.is_absolute() and config_dir is not None:
            path = config_dir / path
        if not path.is_file():
            raise StepFailed(f"{where}.config: file not found: {spec.config}")
        raw = read_yaml(path) or {}
    merge_mapping(raw, spec.set, f"{where}.set")
    raw["stage"] = stage
    model_raw = raw.setdefault("model", {})
    for key in _MODEL_SOURCE_KEYS:
        model_raw.pop(key, None)
    model_raw.update({k: v for k, v in model.items() if v is not None})
    raw.setdefault("data", {})["sources"] = sources
    training = raw.setdefault("training", {})
    training["output_dir"] = output_dir
    training.setdefault("seed", seed)
    cfg = validate_train_dict(raw, where, cls)
    return config_to_dict(cfg)


def validate_train_dict(raw: dict, where: str, cls: type = TrainConfig) -> TrainConfig:
    """Load a mapping as a TrainConfig (or `cls`), with its choices and ranges (errors name the
    pipeline key the stage came from): a dry run rejects what `sicog train` would reject."""
    try:
        return config_from_mapping(cls, raw, where)
    except ConfigError as e:
        raise StepFailed(str(e)) from None


def check_command_config(cfg, where: str) -> None:
    """`check_config` of a sample / curate / evaluate config; errors name the pipeline key (and flag)."""
    try:
        check_config(cfg)
    except SicogError as e:
        if isinstance(e, ConfigError) and e.key:  # the pipeline's key; its YAML has no flags
            raise ConfigError(f"key {where}.{e.key}: {e.problem}") from None
        raise ConfigError(f"key {where}: {e}") from None  # a rule between settings: the section


def train_action(train: dict, launcher: LauncherConfig, source_weights=None, command: str = "train"):
    """Action of a training step: write train.yaml into the step folder, run `sicog train` (or
    `sicog <command>`: dpo).

    `source_weights(sources) -> sources` may set the mixture weights at run time (they depend on
    how many records curation kept).
    """

    def action(step: Step, engine) -> dict:
        resolved = copy.deepcopy(train)
        if source_weights is not None:
            resolved["data"]["sources"] = source_weights(resolved["data"]["sources"])
        cfg_path = Path(step.work_dir) / "train.yaml"
        cfg_path.write_text(yaml.safe_dump(mask_secrets(resolved), sort_keys=False), encoding="utf-8")
        run_command(step, [command, str(cfg_path)], launcher)
        counts: dict = {}
        meta = Path(step.work_dir, "final", "sicog_meta.json")
        if meta.is_file():
            m = json.loads(meta.read_text(encoding="utf-8"))
            counts.update(steps=m.get("steps"), train_loss=m.get("train_loss"))
        summary = Path(step.work_dir, "train_summary.json")
        if summary.is_file():
            s = json.loads(summary.read_text(encoding="utf-8"))
            counts.update({k: v for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        counts["sources"] = [{"path": s["path"], "weight": s.get("weight"), "share": s.get("share")}
                             for s in resolved["data"]["sources"]]
        return counts

    return action


def config_command_action(command: str, cfg, launcher: LauncherConfig, counts_fn=None, where: str | None = None):
    """Action of a sample / curate / evaluate step: write `<step folder>/<command>.yaml` (the typed
    config of that command, checked now, at plan time; errors name the pipeline key `where`), run
    `sicog <command> <that file>`, return `counts_fn(step)`."""
    check_command_config(cfg, where or command)

    def action(step: Step, engine) -> dict:
        path = Path(step.work_dir) / f"{command}.yaml"
        save_config(cfg, path)
        run_command(step, [command, str(path)], launcher)
        return counts_fn(step) if counts_fn else {}

    return action


def command_config(cls, spec, **pipeline_values):
    """The command config `cls` from a pipeline spec (a subclass of it) plus the values the pipeline owns."""
    values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(cls)}
    return cls(**{**values, **pipeline_values})


def count_lines(path: str | os.PathLike) -> int:
    """Non-empty lines of a JSONL file (0 when it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return 0
    with open(p, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


class mixture_weights:  # noqa: N801 - used as a function: mixture_weights(cfg, text)(sources)
    """Sources such that text-only records are a share `ratio` of stage-1.5 samples (default:
    mixture.text_only_ratio; an arm may have its own, sicog.pipeline.arms).

    Image sources are weighted by their record counts (uniform over records); the text-only source
    gets `share: ratio` (sicog.config.DataSource: the same meaning as the stage-1.5 script's
    TEXT_ONLY_RATIO). A source with no records (curation kept nothing) is dropped with a warning;
    with no self-generated records left the step fails. `settings` (the mixture section with the
    share applied) go into the step's params, so a new share is a new step.
    """

    def __init__(self, cfg: PipelineConfig, text_source: str | None, ratio: float | None = None):
        self.ratio = cfg.mixture.text_only_ratio if ratio is None else ratio
        self.text_source, self.on_empty = text_source, cfg.mixture.on_empty
        # companions act through the sources (the companion steps' files), so they stay out of the
        # settings: a run made before the option existed keeps its steps
        self.settings = {**{k: v for k, v in config_to_dict(cfg.mixture).items() if k != "companions"},
                         "text_only_ratio": self.ratio}

    def __call__(self, sources: list[dict]) -> list[dict]:
        out = []
        for s in copy.deepcopy(sources):
            n = count_lines(s["path"])
            if n == 0:
                log.warning("stage 1.5: %s has no records; dropped from the mixture", s["path"])
                continue
            s["weight"] = float(n)
            out.append(s)
        image = [s for s in out if s["path"] != self.text_source]
        if not image and self.on_empty == "text_only" and out:
            log.warning("stage 1.5: no self-generated records at all; training on text-only data "
                        "(mixture.on_empty: text_only)")
            return out
        if not image:
            raise StepFailed("stage 1.5: every self-generated data file is empty (curation kept nothing?): "
                             + ", ".join(s["path"] for s in sources if s["path"] != self.text_source))
        for s in out:
            if s["path"] == self.text_source:
                del s["weight"]  # a source with a share keeps the default weight
                s["share"] = self.ratio
        return out


def record_weights(sources: list[dict]) -> list[dict]:
    """Weight every source by its record count: a multi-file mixture samples uniformly over records."""
    out = copy.deepcopy(sources)
    for s in out:
        s["weight"] = float(max(count_lines(s["path"]), 1))
    return out
