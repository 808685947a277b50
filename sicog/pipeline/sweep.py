"""`sicog run PIPELINE.yaml --sweep KEY=V1,V2 …`: the cross product of settings as one plan in
which every step runs once, however many points of the sweep read it.

Each point of a sweep is the pipeline with `--set KEY=V` for each swept key. The points are
planned together:

1. *What each key affects*: the first point is planned, then each other value of each key alone; a
   step is affected by a key when its settings, inputs or outputs differ from the first point's, or
   it reads an affected step's output.
2. *Where each step lives*: every point is planned with each affected step's folder under
   `sweep/<the values, other than the first point's, of the keys that affect it>/`; a step no swept
   key affects keeps its plain folder. Points that agree on the keys that matter to a step plan it
   identically, and the merged plan holds it once (a step that would differ is an error, never a
   silent choice).
3. *Fewer candidates from more*: the values of `sampling.<task>.n` run from the largest down, and a
   point sampling fewer candidates than an earlier point that agrees on everything else that
   affects that sampling step reads the first n candidates of that point's output (a data step:
   candidates are drawn independently, so the first n of N are a sample of n).

The engine skips every step whose manifest matches, so a sweep after a plain run in the same
work_dir reuses that run's steps too; sicog.pipeline.report.sweep writes one table over the points.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from sicog.config import ConfigError
from sicog.pipeline import data_steps
from sicog.pipeline.engine import params_digest
from sicog.pipeline.plan import Planner, build_plan
from sicog.pipeline.step import Step
from sicog.utils.io import SicogError

_SAMPLE_N = re.compile(r"^sampling\.(captions|reasoning)\.n$")
MAX_POINTS = 64  # each point plans (and may train) every arm: more is a typo


@dataclass
class SweepPoint:
    values: dict[str, Any]  # swept key -> this point's value
    tag: str  # the values, in words (the report's row)
    planner: Planner  # the point's own plan (its maps say which output is which)
    steps: list[Step] = field(default_factory=list)  # its steps, as they are in the merged plan
    derived: list[str] = field(default_factory=list)  # its sampling steps served by a larger N


@dataclass
class Sweep:
    keys: list[str]
    points: list[SweepPoint]
    steps: list[Step]  # the merged plan: every distinct step once, in an order that runs
    affects: dict[str, list[str]]  # step name -> the swept keys that affect it
    work: Path


def parse_sweeps(texts: list[str], from_yaml: Any = None, where: str = "sweep") -> dict[str, list]:
    """{key: values} from the YAML's `sweep:` mapping, then `--sweep KEY=V1,V2` (which replaces a key).

    Values are read as YAML (0.9 is a number); keys of `sampling.<task>.n` run from the largest down.
    A key may name several dotted keys, comma-separated, that take each value together
    (`curation.captions.threshold,curation.reasoning.threshold=0.8,0.9`).
    """
    out: dict[str, list] = {}
    if from_yaml is not None:
        if not isinstance(from_yaml, dict):
            raise ConfigError(f"key {where}: a mapping of dotted keys to lists of values expected")
        for key, values in from_yaml.items():
            if not isinstance(values, list):
                raise ConfigError(f"key {where}.{key}: a list of values expected, got {values!r}")
            out[str(key)] = list(values)
    given: set[str] = set()
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--sweep {text!r}: expected KEY=V1,V2,... (e.g. sampling.captions.n=4,6)")
        if key in given:
            raise ConfigError(f"--sweep {key}: given twice (list every value in one --sweep)")
        given.add(key)
        out[key] = [yaml.safe_load(v) for v in raw.split(",")]
    for key, values in out.items():
        if any(k.split(".")[0] in ("work_dir", "sweep", "extends") for k in key.split(",")):
            raise ConfigError(f"--sweep {key}: every point shares the work folder and the file; sweep a setting")
        if not values or any(v is None or isinstance(v, (dict, list)) for v in values):
            raise ConfigError(f"--sweep {key}: one or more plain values expected, got {values!r}")
        if len({json.dumps(v) for v in values}) < len(values):
            raise ConfigError(f"--sweep {key}: a value is listed twice: {values!r}")
        if all(_SAMPLE_N.match(k) for k in key.split(",")):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
                raise ConfigError(f"--sweep {key}: candidates per item are integers >= 1, got {values!r}")
            out[key] = sorted(values, reverse=True)  # a larger N is sampled first and serves the smaller
    n_points = 1
    for values in out.values():
        n_points *= len(values)
    if n_points > MAX_POINTS:
        raise ConfigError(f"--sweep: {n_points} points (at most {MAX_POINTS})")
    return out


def overrides(key: str, value: Any) -> list[str]:
    """`--set`s of one swept value; a key may name several dotted keys that move together (`a,b`)."""
    return [f"{k}={json.dumps(value)}" for k in key.split(",")]


def _n_key(values: dict, task: str | None) -> str | None:
    """The swept key (group) that sets sampling.<task>.n, if any."""
    return next((k for k in values if f"sampling.{task}.n" in k.split(",")), None)


def plan_sweep(sweeps: dict[str, list], load: Callable[[list[str]], Any], config_dir: str | Path | None) -> Sweep:
    """The merged plan of every point; `load(overrides)` is the pipeline config with those `--set`s."""
    keys = list(sweeps)
    combos = [dict(zip(keys, c)) for c in itertools.product(*(sweeps[k] for k in keys))]
    first = combos[0]

    def planned(values: dict, placement: dict | None = None) -> Planner:
        try:
            return build_plan(load([o for k, v in values.items() for o in overrides(k, v)]), config_dir, placement)
        except SicogError as e:
            raise type(e)(f"sweep point {_words(values)}: {e}") from None

    base = planned(first)
    affects: dict[str, set[str]] = {}
    for key in keys:
        for value in sweeps[key][1:]:
            for name in changed_steps(base.steps, planned({**first, key: value}).steps):
                affects.setdefault(name, set()).add(key)
    union: dict[str, Step] = {}  # merged name -> the step that runs
    planned_as: dict[str, Step] = {}  # merged name -> the step as a point planned it (before serving)
    points = []
    for values in combos:
        placement = {}
        for name, ks in affects.items():
            moved = [k for k in keys if k in ks and values[k] != first[k]]
            if moved:
                placement[name] = "sweep/" + "_".join(_folder_word(k, values[k]) for k in moved)
        planner = base if values is first else planned(values, placement)
        point = SweepPoint(values, _words(values), planner)
        for step in planner.steps:
            merged = f"{placement[step.name]}/{step.name}" if step.name in placement else step.name
            if merged not in union:
                planned_as[merged] = step
                n_key = _n_key(values, step.task)
                served = _served_by_larger_n(step, values[n_key] if n_key else None, n_key, affects, planned_as)
                union[merged] = dataclasses.replace(served or step, name=merged)
            elif not _same(planned_as[merged], step):
                raise SicogError(f"sweep: step {merged} of point {point.tag} differs from the same step of an "
                                 "earlier point (its settings depend on swept keys together); sweep them apart")
            if union[merged].params.get("first_candidates"):
                point.derived.append(merged)
            point.steps.append(union[merged])
        points.append(point)
    return Sweep(keys, points, list(union.values()), {n: sorted(ks) for n, ks in affects.items()}, base.work)


def changed_steps(reference: list[Step], steps: list[Step]) -> set[str]:
    """Names of `steps` that differ from the same-named step of `reference` or read one that does."""
    ref = {s.name: s for s in reference}
    changed: set[str] = set()
    dirty: list[Path] = []
    for step in steps:
        r = ref.get(step.name)
        reads = any(_inside(Path(p).resolve(), dirty) for p in step.inputs.values())
        if reads or r is None or not _same(r, step) or r.outputs != step.outputs:
            changed.add(step.name)
            dirty += [Path(p).resolve() for p in (*step.outputs.values(), step.work_dir)]
    return changed


def _same(a: Step, b: Step) -> bool:
    return a.kind == b.kind and a.inputs == b.inputs and params_digest(a.params) == params_digest(b.params)


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def _served_by_larger_n(step: Step, n: int | None, n_key: str | None, affects: dict,
                        planned_as: dict[str, Step]) -> Step | None:
    """A data step taking the first n candidates of an earlier point's larger sample, if there is one
    that differs from `step` in nothing but n (and its output)."""
    if step.kind != "sample" or step.role != "sample" or n is None or n_key not in affects.get(step.name, set()):
        return None

    def rest(s: Step) -> dict:
        return {k: v for k, v in s.params["sample"].items() if k not in ("n", "out")}

    larger = [(merged, s) for merged, s in planned_as.items() if s.name == step.name and s.kind == "sample"
              and s.params["sample"]["n"] > n and s.inputs == step.inputs and rest(s) == rest(step)]
    if not larger:
        return None
    merged, source = max(larger, key=lambda ms: ms[1].params["sample"]["n"])
    path, out = source.outputs["candidates"], step.outputs["candidates"]
    return Step(name=step.name, kind="data", inputs={"candidates": path}, outputs=step.outputs,
                params={"first_candidates": n}, action=data_steps.first_candidates_action(path, out, n),
                work_dir=step.work_dir, round=step.round, arm=step.arm, task=step.task, role="sample",
                describe=f"the first {n} of the {source.params['sample']['n']} candidates per item of {merged}")


def _words(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "(no sweep)"


def _folder_word(key: str, value: Any) -> str:
    """`curation.captions.threshold`, 0.8 -> `captions.threshold=0.8` (safe in a path)."""
    short = "+".join(".".join(k.split(".")[-2:]) for k in key.split(","))
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", f"{short}={value}")
