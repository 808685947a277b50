"""Evaluate a sicog checkpoint with VLMEvalKit's own `run.py`.

VLMEvalKit builds models from its own registry, so this launcher registers `SicogLLaVA`
(`sicog.eval.vlmeval_model`) and hands over to run.py; every argument after `--` goes to run.py:

    python -m sicog.eval.vlmeval --model CKPT --name sicog_ckpt -- \\
        --data MMStar --work-dir runs/vlmeval --judge exact_matching

It also makes `"class": "SicogLLaVA"` usable in a run.py `--config` JSON. Without `--judge`,
`--judge exact_matching` is added (VLMEvalKit's default for multiple choice is an OpenAI judge).

Exit status: 0 when every model x dataset ran; 1 when run.py reported a failed combination (it
logs them and carries on, e.g. an unknown dataset or a judge without an API key) or itself
failed; 2 for a bad launcher setting (no checkpoint at --model, no run.py).
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sicog.config import ConfigError
from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.eval.config import DTYPES
from sicog.eval.mcq import PROMPT_STYLES
from sicog.eval.vlmeval_model import CLASS_NAME, message_to_pair, model_class
from sicog.utils.io import SicogError

__all__ = ["CLASS_NAME", "LaunchConfig", "find_run_py", "main", "message_to_pair", "model_class", "register"]

log = logging.getLogger(__name__)

#: the logger run.py reports a failed model x dataset combination on
RUN_LOGGER = "RUN"
DEFAULT_JUDGE = "exact_matching"


@dataclass
class LaunchConfig:
    """Settings of `python -m sicog.eval.vlmeval` (run.py's own arguments follow `--`)."""

    model: str | None = setting(None, "checkpoint folder to register as --name (omit when a run.py --config JSON "
                                      "names it)", metavar="CKPT")
    name: str = setting("sicog_llava", "model name given to run.py's --model (default sicog_llava)")
    max_new_tokens: int | None = setting(None, "new tokens per reply (default 32 for direct, 512 for cot, as "
                                               "sicog evaluate)", metavar="N", min=1)
    prompt_style: str = setting("direct", "multiple-choice prompt: direct (option letter) or cot (step by step) "
                                          "(default direct)", choices=PROMPT_STYLES)
    device: str | None = setting(None, "torch device (default: this rank's GPU when CUDA is available, else cpu)")
    dtype: str | None = setting(None, "weights dtype (default: the checkpoint's own)", choices=DTYPES)
    vlmevalkit_dir: str | None = setting(None, "folder holding VLMEvalKit's run.py: a clone, or the installed "
                                               "vlmeval package (default: found from the installed vlmeval)",
                                         metavar="DIR")
    image_dir: str | None = setting(None, "where the benchmark's images are written, byte for byte, named by "
                                          "their hash (default: a folder in the system temp dir)", metavar="DIR")

    def validate(self) -> None:
        if self.model is not None:
            check_checkpoint(self.model, "--model")
        if self.vlmevalkit_dir is not None and not Path(self.vlmevalkit_dir).is_dir():
            raise SicogError(f"--vlmevalkit-dir {self.vlmevalkit_dir}: no such folder")


def check_checkpoint(path: str | Path, what: str = "model_path") -> Path:
    """`path` resolved, when it is a checkpoint folder (holds config.json); else SicogError."""
    p = Path(path)
    if not p.is_dir():
        raise SicogError(f"{what} {path}: no such folder")
    if not (p / "config.json").is_file():
        raise SicogError(f"{what} {path}: not a checkpoint folder (no config.json)")
    return p.resolve()


def register(name: str | None = None, model_path: str | None = None, **kwargs) -> type:
    """Make the class known to VLMEvalKit: as `vlmeval.vlm.SicogLLaVA` (for --config files) and,
    with `name` and `model_path` (a checkpoint folder), as the model `name` of
    `vlmeval.config.supported_VLM`."""
    from sicog.eval.vlmeval_import import import_vlmeval

    import_vlmeval()
    import vlmeval.config
    import vlmeval.vlm

    if name is not None and model_path is None:
        raise SicogError("register: a model name needs a model_path")
    path = check_checkpoint(model_path) if name is not None else None
    cls = model_class()
    setattr(vlmeval.vlm, CLASS_NAME, cls)
    if name is not None:
        vlmeval.config.supported_VLM[name] = partial(cls, model_path=str(path), **kwargs)
    return cls


def find_run_py(vlmevalkit_dir: str | Path | None = None) -> Path:
    """VLMEvalKit's run.py: inside the `vlmeval` package (the PyPI package `nvidia-vlmeval`) or
    beside it (a clone installed with `pip install -e`); in --vlmevalkit-dir when given."""
    if vlmevalkit_dir:
        base = Path(vlmevalkit_dir)
        candidates = [base / "run.py", base / "vlmeval" / "run.py"]
    else:
        from sicog.eval.vlmeval_import import import_vlmeval

        package = Path(import_vlmeval().__file__).resolve().parent
        candidates = [package / "run.py", package.parent / "run.py"]
    for path in candidates:
        if path.is_file():
            return path
    raise SicogError(f"VLMEvalKit's run.py not found (looked for {', '.join(map(str, candidates))}): install "
                     "VLMEvalKit (pip install 'sicog[vlmeval]', or pip install -e a clone) or pass --vlmevalkit-dir")


class _FailureCounter(logging.Handler):
    """Counts the errors run.py logs (a failed combination is logged, not raised)."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage().splitlines()[0])


def run_args(rest: list[str], cfg: LaunchConfig) -> list[str]:
    """run.py's arguments: --model NAME when a checkpoint was registered, and a judge."""
    rest = list(rest)
    if cfg.model and "--model" not in rest and "--config" not in rest:
        rest = ["--model", cfg.name, *rest]
    if "--judge" not in rest and not any(a.startswith("--judge=") for a in rest):
        rest += ["--judge", DEFAULT_JUDGE]
    return rest


def run_vlmevalkit(run_py: Path, args: list[str]) -> int:
    """Run VLMEvalKit's run.py in this process; 1 when it logged a failure, else its own status."""
    counter = _FailureCounter()
    run_logger = logging.getLogger(RUN_LOGGER)
    run_logger.addHandler(counter)
    saved = sys.argv
    sys.argv = [str(run_py), *args]
    try:
        runpy.run_path(str(run_py), run_name="__main__")
    except SystemExit as e:  # run.py's argparse, or an explicit exit
        if e.code not in (None, 0):
            return e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = saved
        run_logger.removeHandler(counter)
    if counter.messages:
        print(f"python -m sicog.eval.vlmeval: VLMEvalKit reported {len(counter.messages)} failure(s):",
              file=sys.stderr)
        for m in counter.messages:
            print(f"  {m}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m sicog.eval.vlmeval [--model CKPT] [flags] -- <run.py arguments>`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    prog = "python -m sicog.eval.vlmeval"
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(p, LaunchConfig)
    args = p.parse_args(argv)
    try:
        cfg = config_from_args(LaunchConfig, args)
        register(cfg.name if cfg.model else None, cfg.model, max_new_tokens=cfg.max_new_tokens,
                 prompt_style=cfg.prompt_style, device=cfg.device, dtype=cfg.dtype, image_dir=cfg.image_dir)
        run_py = find_run_py(cfg.vlmevalkit_dir)
    except (SicogError, ConfigError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"{prog}: error: VLMEvalKit cannot be imported ({e}); pip install 'sicog[vlmeval]'", file=sys.stderr)
        return 2
    return run_vlmevalkit(run_py, run_args(rest, cfg))


if __name__ == "__main__":
    sys.exit(main())
