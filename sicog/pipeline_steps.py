"""Step actions of `sicog run`: launching `sicog <command>` and turning config into TrainConfigs.

Every step that trains, samples, curates or evaluates runs the project's own CLI command, either
as `python -m sicog …`, under `torchrun --nproc_per_node K -m sicog …` (launcher.nproc_per_node > 1),
or inside this process (launcher.in_process, one process only: saves the start-up time of torch
on small runs). Its output goes to `<step folder>/log.txt`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sicog.config import TrainConfig, config_to_dict, load_config
from sicog.pipeline_config import LauncherConfig, PipelineConfig, StageSpec
from sicog.pipeline_engine import Engine, Step, StepFailed

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- launching
def command_argv(launcher: LauncherConfig, sub_argv: list[str]) -> list[str]:
    """The argv that runs `sicog <sub_argv>` with this launcher (torchrun when > 1 process)."""
    if launcher.nproc_per_node > 1 or launcher.nnodes > 1:
        return [
            sys.executable, "-m", "torch.distributed.run",
            f"--nproc_per_node={launcher.nproc_per_node}", f"--nnodes={launcher.nnodes}",
            f"--node_rank={launcher.node_rank}", f"--master_addr={launcher.master_addr}",
            f"--master_port={launcher.master_port}", "-m", "sicog", *sub_argv,
        ]
    return [sys.executable, "-m", "sicog", *sub_argv]


def describe_command(launcher: LauncherConfig, sub_argv: list[str]) -> str:
    argv = command_argv(launcher, sub_argv)
    if argv[1:3] == ["-m", "torch.distributed.run"]:
        argv = ["torchrun", *argv[3:]]
    else:
        argv = ["sicog", *argv[3:]]
    return " ".join(argv)


def run_command(step: Step, engine: Engine, sub_argv: list[str], launcher: LauncherConfig) -> None:
    """Run `sicog <sub_argv>` for `step`; raise StepFailed (with the log's tail) when it fails."""
    log_path = Path(step.work_dir) / "log.txt"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if launcher.in_process:
        _run_in_process(step, sub_argv, launcher, log_path)
        return
    env = {**os.environ, **launcher.env}
    env.setdefault("PYTHONUNBUFFERED", "1")
    if launcher.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(launcher.threads)
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(f"$ {describe_command(launcher, sub_argv)}\n")
        fh.flush()
        proc = subprocess.Popen(command_argv(launcher, sub_argv), stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            rc = proc.wait()
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): stop the child too, so nothing writes behind our back.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    if rc != 0:
        raise StepFailed(f"step {step.name} failed (exit {rc}); see {log_path}:\n{_tail(log_path)}")


@contextlib.contextmanager
def captured_output(log_path: Path, header: str = ""):
    """Send stdout, stderr and logging of in-process work to the step's log file (like a subprocess)."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.handlers = [handler]
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                if header:
                    fh.write(header + "\n")
                    fh.flush()
                yield
        finally:
            root.handlers = saved_handlers
            root.setLevel(saved_level)


def _run_in_process(step: Step, sub_argv: list[str], launcher: LauncherConfig, log_path: Path) -> None:
    """`sicog <sub_argv>` in this process, its stdout/stderr/logging going to the step's log."""
    from sicog.cli import main

    saved_env = {k: os.environ.get(k) for k in launcher.env}
    os.environ.update(launcher.env)
    try:
        with captured_output(log_path, f"$ sicog {' '.join(sub_argv)}   (in process)"), \
                torch_threads(launcher.threads):
            rc = main(list(sub_argv))  # its logging.basicConfig(force=True) binds to the redirected stderr
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if rc == 130:  # cli.main turned Ctrl-C / SIGTERM into exit 130: stop the pipeline the same way
        raise KeyboardInterrupt
    if rc != 0:
        raise StepFailed(f"step {step.name} failed (exit {rc}); see {log_path}:\n{_tail(log_path)}")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch.set_num_threads(n) for the block (in-process steps); nothing when n is None."""
    if not n:
        yield
        return
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def python_action(fn, describe: str, threads: int | None = None):
    """Wrap `fn(step) -> counts` so that its output goes to the step's log.txt."""

    def action(step: Step, engine: Engine) -> dict:
        with captured_output(Path(step.work_dir) / "log.txt", f"# {describe}"), torch_threads(threads):
            return fn(step) or {}

    return action


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------- train configs
def _expand_dotted(mapping: dict[str, Any]) -> dict:
    """{'training.max_steps': 5} -> {'training': {'max_steps': 5}} (nested keys kept)."""
    out: dict = {}
    for key, value in mapping.items():
        node = out
        parts = str(key).split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        if isinstance(value, dict) and isinstance(node.get(parts[-1]), dict):
            deep_merge(node[parts[-1]], _expand_dotted(value))
        else:
            node[parts[-1]] = _expand_dotted(value) if isinstance(value, dict) else value
    return out


def deep_merge(base: dict, extra: dict) -> dict:
    """Merge `extra` into `base` in place (mappings recursively, everything else replaced)."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


_MODEL_SOURCE_KEYS = ("preset", "checkpoint", "vision_tower", "language_model", "mm_projector")


def train_config(spec: StageSpec, *, stage: str, model: dict, sources: list[dict], output_dir: str,
                 seed: int, where: str, config_dir: Path | None = None) -> dict:
    """A validated TrainConfig (as a mapping) for one stage of the pipeline.

    The stage's YAML and `set` give the hyper-parameters; the pipeline owns the model source, the
    data sources and the output folder (any values for those in the YAML are replaced). A relative
    `spec.config` is relative to `config_dir` (the pipeline YAML's folder).
    """
    raw: dict = {}
    if spec.config:
        path = Path(spec.config)
        if not path.is_absolute() and config_dir is not None:
            path = config_dir / path
        if not path.is_file():
            raise StepFailed(f"{where}.config: file not found: {spec.config}")
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    deep_merge(raw, _expand_dotted(spec.set))
    raw["stage"] = stage
    model_raw = raw.setdefault("model", {})
    for key in _MODEL_SOURCE_KEYS:
        model_raw.pop(key, None)
    model_raw.update({k: v for k, v in model.items() if v is not None})
    raw.setdefault("data", {})["sources"] = sources
    training = raw.setdefault("training", {})
    training["output_dir"] = output_dir
    training.setdefault("seed", seed)
    cfg = validate_train_dict(raw, where)
    return config_to_dict(cfg)


def validate_train_dict(raw: dict, where: str) -> TrainConfig:
    """Load a mapping as a TrainConfig (errors name the pipeline key the stage came from)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{where}.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
        try:
            return load_config(TrainConfig, path)
        except Exception as e:  # ConfigError names the temp file: say which pipeline key instead
            raise StepFailed(f"{where}: {str(e).replace(str(path), where)}") from None


def train_action(train: dict, launcher: LauncherConfig, source_weights=None):
    """Action of a training step: write train.yaml into the step folder, run `sicog train`.

    `source_weights(sources) -> sources` may set the mixture weights at run time (they depend on
    how many records curation kept).
    """

    def action(step: Step, engine: Engine) -> dict:
        resolved = copy.deepcopy(train)
        if source_weights is not None:
            resolved["data"]["sources"] = source_weights(resolved["data"]["sources"])
        cfg_path = Path(step.work_dir) / "train.yaml"
        cfg_path.write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
        run_command(step, engine, ["train", str(cfg_path)], launcher)
        counts: dict = {}
        meta = Path(step.work_dir, "final", "sicog_meta.json")
        if meta.is_file():
            m = json.loads(meta.read_text(encoding="utf-8"))
            counts.update(steps=m.get("steps"), train_loss=m.get("train_loss"))
        summary = Path(step.work_dir, "train_summary.json")
        if summary.is_file():
            s = json.loads(summary.read_text(encoding="utf-8"))
            counts.update({k: v for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        counts["sources"] = [{"path": s["path"], "weight": s.get("weight")} for s in resolved["data"]["sources"]]
        return counts

    return action


def count_lines(path: str | os.PathLike) -> int:
    """Non-empty lines of a JSONL file (0 when it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return 0
    with open(p, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def mixture_weights(cfg: PipelineConfig, text_source: str | None):
    """Weights so that text-only records are `text_only_ratio` of stage-1.5 samples.

    Image sources are weighted by their record counts (uniform over records); the text-only source
    gets ratio / (1 - ratio) of their total. A source with no records (curation kept nothing) is
    dropped with a warning; with no self-generated records left the step fails.
    """

    def weights(sources: list[dict]) -> list[dict]:
        out = []
        for s in copy.deepcopy(sources):
            n = count_lines(s["path"])
            if n == 0:
                log.warning("stage 1.5: %s has no records; dropped from the mixture", s["path"])
                continue
            s["weight"] = float(n)
            out.append(s)
        image = [s for s in out if s["path"] != text_source]
        if not image and cfg.mixture.on_empty == "text_only" and out:
            log.warning("stage 1.5: no self-generated records at all; training on text-only data "
                        "(mixture.on_empty: text_only)")
            return out
        if not image:
            raise StepFailed("stage 1.5: every self-generated data file is empty (curation kept nothing?): "
                             + ", ".join(s["path"] for s in sources if s["path"] != text_source))
        total = sum(s["weight"] for s in image)
        for s in out:
            if s["path"] == text_source:
                r = cfg.mixture.text_only_ratio
                s["weight"] = total * r / (1.0 - r)
        return out

    return weights


def record_weights(sources: list[dict]) -> list[dict]:
    """Weight every source by its record count: a multi-file mixture samples uniformly over records."""
    out = copy.deepcopy(sources)
    for s in out:
        s["weight"] = float(max(count_lines(s["path"]), 1))
    return out


def launcher_dict(launcher: LauncherConfig) -> dict:
    return config_to_dict(launcher)
