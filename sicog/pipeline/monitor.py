"""The round monitor of `sicog run`: each round, beside accuracy, how right its teacher is and whether
its curated data collapses, with a warning when a signal crosses its threshold (docs/round_monitor.md).

    probe_heldout        (monitor.probe_heldout) images of the reasoning annotations held out as the probe
    r{k}/probe_teacher   the round's reasoning warm-up model (the teacher) answers `monitor.probe`
                         greedily, step by step (`sicog sample --mode cot`, one candidate)
    r{k}/monitor         monitor.json: the teacher's probe accuracy (sicog.eval.probe), the collapse
                         signals of the round's curated captions and CoT (sicog.eval.collapse), the
                         thresholds and the warnings

Round k's monitor reads round k-1's monitor.json and curated files: the probe drop, the length change
and the copied share compare with the previous round. The thresholds are `monitor.*` settings; which
signal warns when is decided here, in `round_warnings`, and nowhere else.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sicog.config import config_to_dict
from sicog.data.records import iter_json_objects
from sicog.pipeline.actions import command_config
from sicog.pipeline.config import MonitorConfig, expand_env
from sicog.pipeline.data_steps import hold_out_probe, sample_counts
from sicog.pipeline.launch import python_action
from sicog.pipeline.step import Step
from sicog.pipeline.tasks import TASK_NAMES
from sicog.stages.sampling.config import SampleConfig
from sicog.utils.io import write_json

THRESHOLDS = ("max_probe_drop", "min_distinct_2", "max_length_change", "min_answer_entropy", "max_copied_share")


def _labels(path: str | None) -> list[str] | None:
    """The gpt turn of every curated record (None: no such file in the plan)."""
    if path is None:
        return None
    out = []
    for _line, rec in iter_json_objects(path):
        out.append(next((t.get("value") or "" for t in rec.get("conversations") or [] if t.get("from") == "gpt"), ""))
    return out


def round_warnings(current: dict, previous: dict | None, mon: MonitorConfig) -> list[str]:
    """The warnings of one round's monitor.json mapping (`previous`: round k-1's, or None)."""
    out = []
    probe, before = current.get("teacher_probe"), (previous or {}).get("teacher_probe")
    if probe and before and probe["accuracy"] is not None and before["accuracy"] is not None \
            and before["accuracy"] - probe["accuracy"] > mon.max_probe_drop:
        out.append(f"teacher probe accuracy fell from {before['accuracy']:.1%} to {probe['accuracy']:.1%} "
                   f"(more than monitor.max_probe_drop {mon.max_probe_drop:.1%})")
    for task, s in current.get("curated", {}).items():
        where = f"curated {task}"
        if s["distinct_2"] is not None and s["distinct_2"] < mon.min_distinct_2:
            out.append(f"{where}: distinct-2 {s['distinct_2']:.3f} < monitor.min_distinct_2 {mon.min_distinct_2}")
        prev = ((previous or {}).get("curated") or {}).get(task) or {}
        if s["mean_words"] and prev.get("mean_words"):
            change = s["mean_words"] / prev["mean_words"] - 1
            if abs(change) > mon.max_length_change:
                out.append(f"{where}: mean length {prev['mean_words']:.1f} -> {s['mean_words']:.1f} words "
                           f"({change:+.0%}; monitor.max_length_change {mon.max_length_change:.0%})")
        entropy = s.get("answer_entropy_bits")
        if entropy is not None and entropy < mon.min_answer_entropy:
            out.append(f"{where}: final answers' entropy {entropy:.2f} bits < monitor.min_answer_entropy "
                       f"{mon.min_answer_entropy} ({s['distinct_answers']} distinct; "
                       f"{s['top_answer_share']:.0%} are {s['top_answer']!r})")
        if s["copied_share"] is not None and s["copied_share"] > mon.max_copied_share:
            out.append(f"{where}: {s['copied_share']:.1%} of the labels are verbatim labels of the previous round "
                       f"(> monitor.max_copied_share {mon.max_copied_share:.0%})")
    return out


def monitor_round(k: int, curated: dict[str, str], previous_curated: dict[str, str], probe: str | None,
                  previous_json: str | None, mon: MonitorConfig, out: str) -> dict:
    """Measure round k and write `out` (monitor.json); returns the mapping written."""
    from sicog.eval.collapse import collapse_signals
    from sicog.eval.probe import score_probe

    signals = {task: collapse_signals(_labels(path), _labels(previous_curated.get(task)),
                                      answers=task == "reasoning")
               for task, path in curated.items()}
    result = {"round": k, "teacher_probe": score_probe(probe) if probe else None, "curated": signals,
              "thresholds": {name: getattr(mon, name) for name in THRESHOLDS}}
    previous = json.loads(Path(previous_json).read_text(encoding="utf-8")) if previous_json else None
    result["warnings"] = round_warnings(result, previous, mon)
    write_json(out, result)
    return result


def plan_heldout_probe(planner) -> None:
    """monitor.probe_heldout: the `probe_heldout` step splits the reasoning annotations once, before any
    step reads them, and `data.annotated_reasoning` becomes the rest (warm-up, mixture, SFT alike)."""
    mon: MonitorConfig = planner.cfg.monitor
    if not mon.enabled or not mon.probe_heldout:
        return
    source = planner.need("annotated_reasoning", "monitor.probe_heldout")
    folder = planner.folder("probe_heldout")
    rest, probe = f"{folder}/annotated_reasoning.jsonl", f"{folder}/probe.jsonl"
    n, seed = mon.probe_heldout, planner.cfg.seed
    planner.add(Step(name="probe_heldout", kind="data", inputs={"annotations": source},
                     outputs={"annotations": rest, "probe": probe}, params={"images": n, "seed": seed},
                     action=python_action(lambda step: hold_out_probe(source, rest, probe, n, seed),
                                          "hold out the monitor's probe", planner.cfg.launcher_for("data").threads),
                     work_dir=folder, role="probe_heldout",
                     describe=f"{n} images of the reasoning annotations held out as the monitor's probe"))
    planner.data.annotated_reasoning = rest


def plan_monitor(planner, k: int) -> None:
    """Add round k's probe and monitor steps (nothing when monitor.enabled is false or the round
    has neither curated data nor a warm-up model)."""
    mon: MonitorConfig = planner.cfg.monitor
    curated = {t: planner.curated[(k, t)] for t in TASK_NAMES if (k, t) in planner.curated}
    teacher = next((s for s in planner.steps if s.round == k and s.role == "warmup_reasoning"), None)
    if not mon.enabled or (not curated and teacher is None):
        return
    r = f"r{k}"
    inputs = dict(curated)
    probe_out = None
    probe = expand_env(mon.probe, "monitor.probe")
    heldout = next((s for s in planner.steps if s.role == "probe_heldout"), None)
    if probe:
        probe = str(Path(probe).resolve())
        planner.check_input("monitor.probe", probe)
    elif heldout is not None:
        probe = heldout.outputs["probe"]
    if probe and teacher is not None:
        folder = expand_env(mon.probe_image_folder, "monitor.probe_image_folder")
        image_folder = str(Path(folder).resolve()) if folder else planner.data.image_folder
        greedy = replace(planner.cfg.sampling.reasoning, n=1, temperature=0.0, top_p=1.0)
        probe_out = planner.folder(f"{r}/probe_teacher") + "/candidates.jsonl"
        model = teacher.outputs["checkpoint"]
        cfg = command_config(SampleConfig, greedy, model=model, data=probe, image_folder=image_folder,
                             out=probe_out, mode="cot", seed=planner.round_seed(k))
        step = planner.config_step(f"{r}/probe_teacher", "sample", cfg, {"model": model, "records": probe},
                                   {"candidates": probe_out}, lambda step: sample_counts(probe_out), round=k,
                                   task="reasoning", role="probe")
        step.diagnostic = True  # feeds only the report
        inputs["probe"] = probe_out
    previous_curated = {t: planner.curated[(k - 1, t)] for t in TASK_NAMES if (k - 1, t) in planner.curated}
    previous = next((s for s in planner.steps if s.round == k - 1 and s.role == "monitor"), None)
    previous_json = previous.outputs["monitor"] if previous is not None else None
    inputs.update({f"previous_{t}": p for t, p in previous_curated.items()})
    if previous_json:
        inputs["previous_monitor"] = previous_json
    folder = planner.folder(f"{r}/monitor")
    out = f"{folder}/monitor.json"

    def run(step) -> dict:
        result = monitor_round(k, curated, previous_curated, probe_out, previous_json, mon, out)
        probe_result = result["teacher_probe"] or {}
        counts = {"warnings": len(result["warnings"]), "probe_items": probe_result.get("items"),
                  "probe_accuracy": probe_result.get("accuracy")}
        return {key: value for key, value in counts.items() if value is not None}

    measure = python_action(run, f"round monitor of round {k}", planner.cfg.launcher_for("data").threads)

    def action(step, engine) -> dict:
        counts = measure(step, engine)
        for text in json.loads(Path(out).read_text(encoding="utf-8"))["warnings"]:
            engine.echo(f"        WARNING round {k}: {text}")  # on the console, not only in the step's log
        return counts

    planner.add(Step(name=f"{r}/monitor", kind="data", inputs=inputs, outputs={"monitor": out},
                     params={"monitor": config_to_dict(mon), "round": k}, action=action, work_dir=folder,
                     round=k, role="monitor", diagnostic=True,
                     describe="round monitor: teacher probe accuracy, collapse signals of the curated data"))
