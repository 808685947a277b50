"""A pipeline step and its result: what the planner makes, the engine runs and the scheduler,
launcher and actions handle (its own module, so none of them imports another to name it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sicog.utils.io import SicogError


class StepFailed(SicogError):
    """A pipeline step exited with an error; the message names the step and its log file."""


@dataclass
class Step:
    """One unit of the pipeline: `action(step, engine)` turns `inputs` into `outputs`.

    `params` is everything besides the inputs that determines the outputs (a training config, the
    sampling temperature …); it must be JSON-serialisable. `work_dir` is the step's own folder
    (logs, generated configs, partial outputs); it is removed when the step must be redone.
    """

    name: str
    kind: str  # what runs it: train | sample | curate | evaluate | data | a plugin's kind (standins, world)
    inputs: dict[str, str]
    outputs: dict[str, str]
    params: dict[str, Any]
    action: Callable[[Step, Any], dict | None]  # (step, the engine)
    work_dir: str
    round: int = 0
    arm: str | None = None
    describe: str = ""  # one line for --dry-run (usually the command line)
    task: str | None = None  # captions | reasoning, for the steps of one task
    role: str | None = None  # its place in the loop (warmup, sample, greedy, curate, select, pretrain, ...)
    diagnostic: bool = False  # feeds only the report's diagnostics: side-by-side runs start it after the others


@dataclass
class StepResult:
    name: str
    status: str  # ran | resumed | skipped | planned
    seconds: float
    counts: dict = field(default_factory=dict)
    step: Step | None = None
    manifest: dict | None = None  # the step's manifest after this run (None when only planned)
