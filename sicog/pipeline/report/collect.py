"""report.json of a pipeline run, collected from what the engine and the steps recorded.

The engine's results give every step's manifest (timings, counts); the planner's typed maps
((round, arm) -> checkpoint / evaluation, (round, task) -> curate step) say which output is
which, so no step name or manifest path is re-derived here. Figures come from the
`sicog evaluate` summaries and the curation reports. Paths in report.json are relative to the
report's folder, so the folder can be moved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from sicog.eval.outputs import read_summary
from sicog.pipeline.actions import count_lines
from sicog.pipeline.arms import ARMS, arm_names, arm_table, declared_comparisons
from sicog.pipeline.config import POST_TRAINING_ARMS
from sicog.pipeline.report.compare import COMPARISONS, benchmark_comparisons, paired_comparisons
from sicog.stages.curation.outputs import read_curated, read_stats


def _rel(path: str | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)


def _subtypes(mcq: dict) -> dict:
    """{subtype: {accuracy, ci95, n}} of an evaluation's per_subcategory (the TSV's l2-category)."""
    return {k: {f: v.get(f) for f in ("accuracy", "ci95", "n")} for k, v in (mcq.get("per_subcategory") or {}).items()}


def arm_result(checkpoint: str, eval_dir: str | None, root: Path) -> dict:
    """{checkpoint, benchmark{accuracy, n, per_category}, captions{object_recall, hallucination_rate}}."""
    summary = read_summary(eval_dir) if eval_dir else None
    out: dict = {"checkpoint": _rel(checkpoint, root), "evaluation": _rel(eval_dir, root)}
    if summary:
        mcq = summary.get("mcq", summary)
        out["benchmark"] = {
            "accuracy": mcq.get("accuracy"),
            "ci95": mcq.get("ci95"),
            "n": mcq.get("n"),
            "per_category": {k: (v["accuracy"] if isinstance(v, dict) else v)
                             for k, v in (mcq.get("per_category") or {}).items()},
            "unanswered": mcq.get("unanswered"),
            "chance_accuracy": mcq.get("chance_accuracy"),
            "scoring": summary.get("mcq_scoring", "generate"),
            "accuracy_by_scoring": {way: m.get("accuracy") for way, m in (summary.get("mcq_by_scoring") or {}).items()},
            # each scoring's n and interval: a scoring may read fewer questions (evaluation.generate_limit)
            "by_scoring": {way: {k: m.get(k) for k in ("accuracy", "ci95", "n")}
                           for way, m in (summary.get("mcq_by_scoring") or {}).items()},
            "prompt_style": summary.get("prompt_style"),
            "per_subcategory": _subtypes(mcq),
        }
        blind = summary.get("mcq_shuffled_images")
        if blind:
            out["benchmark"]["accuracy_shuffled_images"] = blind.get("accuracy")
            out["benchmark"]["ci95_shuffled_images"] = blind.get("ci95")
            out["benchmark"]["per_category_shuffled_images"] = {
                k: (v["accuracy"] if isinstance(v, dict) else v) for k, v in (blind.get("per_category") or {}).items()}
            out["benchmark"]["per_subcategory_shuffled_images"] = _subtypes(blind)
        if summary.get("benchmarks"):
            out["benchmarks"] = {name: {k: b.get(k) for k in ("kind", "headline", "value", "n_items", "paired")}
                                 for name, b in summary["benchmarks"].items()}
        cap = summary.get("captions") or {}
        out["captions"] = {k: cap.get(k) for k in ("object_recall", "hallucination_rate", "attribute_accuracy",
                                                    "position_accuracy", "n") if k in cap}
    return out


def step_rows(engine) -> list[dict]:
    """One row per step the engine handled: name, kind, round, arm, task, seconds, status, counts."""
    rows = []
    for res in engine.results:
        m, step = res.manifest or {}, res.step
        rows.append({"name": res.name, "kind": step.kind if step else None, "round": step.round if step else 0,
                     "arm": step.arm if step else None, "task": step.task if step else None,
                     "seconds": m.get("seconds"), "status": m.get("status", "not run"),
                     "attempts": m.get("attempts"), "finished_at": m.get("finished_at"),
                     "counts": m.get("counts", {})})
    return rows


def _stage15_data(planner, round_: int, arm: str, root: Path) -> list[dict]:
    """The arm's stage-1.5 files with their record counts ([] for the base arm)."""
    step = planner.pretrain_steps.get((round_, arm))
    if step is None:
        return []
    return [{"file": _rel(src["path"], root), "records": count_lines(src["path"])}
            for src in step.params["train"]["data"]["sources"]]


def _counts(engine, step) -> dict:
    res = engine.result_of(step) if step is not None else None
    return ((res.manifest or {}).get("counts") or {}) if res else {}


def curation_section(planner, engine) -> dict:
    """Per round and task: the curation's stats plus kept counts."""
    out: dict = {}
    for (k, task), step in sorted(planner.curate_steps.items()):
        entry = {"counts": _counts(engine, step), "stats": read_stats(step.outputs["curated"]) or {}}
        out.setdefault(f"round{k}", {})[task] = entry
    return out


def monitor_section(planner, root: Path) -> list[dict]:
    """Each round's monitor.json (sicog.pipeline.monitor) with the round's sicog accuracy beside it."""
    out = []
    for step in sorted((s for s in planner.steps if s.role == "monitor"), key=lambda s: s.round):
        path = Path(step.outputs["monitor"])
        if not path.is_file():
            continue
        entry = json.loads(path.read_text(encoding="utf-8"))
        ev = planner.evaluations.get((step.round, "sicog"))
        summary = read_summary(ev) if ev else None
        entry["accuracy"] = (summary.get("mcq", summary) or {}).get("accuracy") if summary else None
        entry["file"] = _rel(str(path), root)
        out.append(entry)
    return out


def curation_score_lists(planner) -> dict[str, list[float]]:
    """Best score of every kept item per round/task, from the curation outputs."""
    out: dict[str, list[float]] = {}
    for (k, task), step in sorted(planner.curate_steps.items()):
        curated = Path(step.outputs["curated"])
        if not curated.is_file():
            continue
        scores = [float(rec["score"]) for rec in read_curated(curated)
                  if isinstance(rec.get("score"), (int, float))]
        if scores:
            out[f"r{k} {task}"] = scores
    return out


def build_report(planner, engine, root: Path, extra: dict | None = None) -> dict:
    """The report mapping: arms (round 1), every (round, arm), steps and curation."""
    cfg = planner.cfg
    arms = {}
    names = arm_names(cfg.arms)  # built-in arms in their order, then the declared ones
    table = arm_table(cfg.arms)
    for arm in [a for a in ARMS if a in names] + [a for a in names if a not in ARMS]:
        r = 1 if table[arm].trains() else 0
        if (r, arm) in planner.arm_checkpoints:
            arms[arm] = arm_result(planner.arm_checkpoints[(r, arm)], planner.evaluations.get((r, arm)), root)
            arms[arm]["stage15_data"] = _stage15_data(planner, r, arm, root)
            if table[arm].note:
                arms[arm]["note"] = table[arm].note  # what the arm measures (its entry of the arms table)
    for arm in POST_TRAINING_ARMS:  # post_training: after stage 2 of round 1
        if (1, arm) in planner.arm_checkpoints:
            from sicog.pipeline.post_training import dpo_result

            arms[arm] = arm_result(planner.arm_checkpoints[(1, arm)], planner.evaluations.get((1, arm)), root)
            arms[arm]["dpo"] = dpo_result(planner.dpo_steps.get((1, arm)))
    rounds = []
    for (r, arm), ckpt in sorted(planner.arm_checkpoints.items()):
        res = arm_result(ckpt, planner.evaluations.get((r, arm)), root)
        rounds.append({"round": r, "arm": arm, "checkpoint": res["checkpoint"],
                       "accuracy": res.get("benchmark", {}).get("accuracy"),
                       "object_recall": res.get("captions", {}).get("object_recall"),
                       "hallucination_rate": res.get("captions", {}).get("hallucination_rate")})
    first_round = {arm: planner.evaluations.get((1 if arm in POST_TRAINING_ARMS or table[arm].trains() else 0, arm))
                   for arm in arms}
    report = {"name": cfg.name, "seed": cfg.seed, "rounds_configured": cfg.rounds, "arms": arms,
              "comparisons": paired_comparisons(first_round, COMPARISONS + declared_comparisons(cfg.arms)),
              "benchmark_comparisons": benchmark_comparisons(first_round, COMPARISONS + declared_comparisons(cfg.arms)),
              "rounds": rounds, "steps": step_rows(engine), "curation": curation_section(planner, engine)}
    from sicog.pipeline.report.overlap import stage15_overlap

    report["overlap"] = stage15_overlap(planner, root)
    report["monitor"] = monitor_section(planner, root)
    report.update(extra or {})
    return report
