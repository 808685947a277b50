"""report.json / report.md / PNG plots of a pipeline run (and of `sicog demo`).

Everything is read back from what the steps wrote: the manifests (timings, counts), the
`sicog evaluate` summaries (accuracy, per-category accuracy, caption figures) and the curation
reports. Paths in report.json are relative to the report's folder, so the folder can be moved.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sicog.pipeline_data import read_eval_summary
from sicog.utils.io import write_json

log = logging.getLogger(__name__)

ARM_ORDER = ("base", "sicog", "uncurated", "oracle")


def _rel(path: str | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)


def arm_result(checkpoint: str, eval_dir: str | None, root: Path) -> dict:
    """{checkpoint, benchmark{accuracy, n, per_category}, captions{object_recall, hallucination_rate}}."""
    summary = read_eval_summary(eval_dir) if eval_dir else None
    out: dict = {"checkpoint": _rel(checkpoint, root)}
    if summary:
        mcq = summary.get("mcq", summary)
        out["benchmark"] = {
            "accuracy": mcq.get("accuracy"),
            "n": mcq.get("n"),
            "per_category": {k: (v["accuracy"] if isinstance(v, dict) else v)
                             for k, v in (mcq.get("per_category") or {}).items()},
            "unanswered": mcq.get("unanswered"),
            "chance_accuracy": mcq.get("chance_accuracy"),
            "scoring": summary.get("mcq_scoring", "generate"),
            "accuracy_by_scoring": {way: m.get("accuracy") for way, m in (summary.get("mcq_by_scoring") or {}).items()},
        }
        blind = summary.get("mcq_shuffled_images")
        if blind:
            out["benchmark"]["accuracy_shuffled_images"] = blind.get("accuracy")
            out["benchmark"]["per_category_shuffled_images"] = {
                k: (v["accuracy"] if isinstance(v, dict) else v) for k, v in (blind.get("per_category") or {}).items()}
        cap = summary.get("captions") or {}
        out["captions"] = {k: cap.get(k) for k in ("object_recall", "hallucination_rate", "attribute_accuracy",
                                                    "position_accuracy", "n") if k in cap}
    return out


def step_rows(planner, root: Path) -> list[dict]:
    """One row per step from its manifest: name, kind, seconds, status, counts."""
    rows = []
    manifest_dir = Path(planner.work) / "manifests"
    for step in planner.steps:
        path = manifest_dir / f"{step.name.replace('/', '__')}.json"
        m = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        rows.append({"name": step.name, "kind": step.kind, "round": step.round, "arm": step.arm,
                     "seconds": m.get("seconds"), "status": m.get("status", "not run"),
                     "attempts": m.get("attempts"), "finished_at": m.get("finished_at"),
                     "counts": m.get("counts", {})})
    return rows


def _stage15_data(planner, round_: int, arm: str, root: Path) -> list[dict]:
    """The arm's stage-1.5 files with their record counts ([] for the base arm)."""
    from sicog.pipeline_steps import count_lines

    step = next((s for s in planner.steps if s.name == f"r{round_}/pretrain_{arm}"), None)
    if step is None:
        return []
    return [{"file": _rel(src["path"], root), "records": count_lines(src["path"])}
            for src in step.params["train"]["data"]["sources"]]


def curation_section(planner) -> dict:
    """Per round and task: the curation report's stats plus kept counts."""
    out: dict = {}
    for step in planner.steps:
        if step.kind != "curate":
            continue
        task = step.name.rsplit("_", 1)[-1]
        stats = _read_stats(step.outputs.get("report"))
        m_path = Path(planner.work) / "manifests" / f"{step.name.replace('/', '__')}.json"
        counts = json.loads(m_path.read_text())["counts"] if m_path.is_file() else {}
        entry = {"counts": counts, "stats": stats}
        sel_path = Path(planner.work) / "manifests" / f"{step.name.replace('/', '__').replace('curate_', 'select_')}.json"
        if sel_path.is_file():  # curation.*.keep_fraction: the selection step decides what is kept
            entry["selection"] = json.loads(sel_path.read_text(encoding="utf-8")).get("counts", {})
        out.setdefault(f"round{step.round}", {})[task] = entry
    return out


def _read_stats(report_dir: str | None) -> dict:
    if not report_dir or not Path(report_dir).is_dir():
        return {}
    for p in sorted(Path(report_dir).glob("*.json")):
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            continue
    return {}


def build_report(planner, root: Path, extra: dict | None = None) -> dict:
    """The report mapping (see the module docstring and the issue's schema)."""
    cfg = planner.cfg
    arms = {}
    for arm in [a for a in ARM_ORDER if a in cfg.arms]:
        r = 0 if arm == "base" else 1
        if (r, arm) in planner.arm_checkpoints:
            arms[arm] = arm_result(planner.arm_checkpoints[(r, arm)], planner.evaluations.get((r, arm)), root)
            arms[arm]["stage15_data"] = _stage15_data(planner, r, arm, root)
    rounds = []
    for (r, arm), ckpt in sorted(planner.arm_checkpoints.items()):
        res = arm_result(ckpt, planner.evaluations.get((r, arm)), root)
        rounds.append({"round": r, "arm": arm, "checkpoint": res["checkpoint"],
                       "accuracy": res.get("benchmark", {}).get("accuracy"),
                       "object_recall": res.get("captions", {}).get("object_recall"),
                       "hallucination_rate": res.get("captions", {}).get("hallucination_rate")})
    report = {"name": cfg.name, "seed": cfg.seed, "rounds_configured": cfg.rounds, "arms": arms,
              "rounds": rounds, "steps": step_rows(planner, root), "curation": curation_section(planner)}
    report.update(extra or {})
    return report


# ---------------------------------------------------------------------------- markdown + plots
def _fmt(v, pct: bool = True) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.3g}"


def render_markdown(report: dict, title: str, notes: list[str] | None = None) -> str:
    lines = [f"# {title}", ""]
    if report.get("preset"):
        lines.append(f"Preset `{report['preset']}`, seed {report.get('seed')}, wall time "
                     f"{report.get('wall_seconds', 0):.0f} s (this invocation; steps skipped as complete cost "
                     f"nothing); the steps took {report.get('steps_seconds', 0):.0f} s in all.")
        lines.append("")
    ways = list(dict.fromkeys(w for a in report["arms"].values()
                              for w in a.get("benchmark", {}).get("accuracy_by_scoring", {})))
    headline = next((a["benchmark"].get("scoring") for a in report["arms"].values() if a.get("benchmark")), None)
    others = [w for w in ways if w != headline]
    lines += ["## Arms (round 1)", ""]
    if headline:
        lines += [f"Benchmark accuracy is scored by **{headline}**" +
                  (f"; also shown: {', '.join(others)}" if others else "") +
                  " (generate: the option letter the model writes; likelihood: the option text it finds "
                  "most probable as the answer to the open question).", ""]
    blind = any("accuracy_shuffled_images" in a.get("benchmark", {}) for a in report["arms"].values())
    if blind:
        lines += ["*shuffled images*: the same questions, each with another item's image — what the question "
                  "alone gives; the gap to the accuracy is what the model reads from the image.", ""]
    lines += ["| arm | benchmark accuracy % | " + "".join(f"{w} % | " for w in others) +
              ("shuffled images % | " if blind else "") + "n | caption object recall % | hallucination rate % "
              "| checkpoint |", "|---|---|" + "---|" * (len(others) + blind) + "---|---|---|---|"]
    for name, a in report["arms"].items():
        b, c = a.get("benchmark", {}), a.get("captions", {})
        extra = "".join(f"{_fmt(b.get('accuracy_by_scoring', {}).get(w))} | " for w in others)
        if blind:
            extra += f"{_fmt(b.get('accuracy_shuffled_images'))} | "
        lines.append(f"| {name} | {_fmt(b.get('accuracy'))} | {extra}{b.get('n', '–')} | "
                     f"{_fmt(c.get('object_recall'))} | {_fmt(c.get('hallucination_rate'))} | `{a['checkpoint']}` |")
    cats = sorted({k for a in report["arms"].values() for k in a.get("benchmark", {}).get("per_category", {})})
    if cats:
        lines += ["", "### Accuracy per question category (%)", "",
                  "| arm | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
        for name, a in report["arms"].items():
            pc = a.get("benchmark", {}).get("per_category", {})
            lines.append(f"| {name} | " + " | ".join(_fmt(pc.get(c)) for c in cats) + " |")
        for name, a in report["arms"].items():
            pc = a.get("benchmark", {}).get("per_category_shuffled_images")
            if pc:
                lines.append(f"| {name}, shuffled images | " + " | ".join(_fmt(pc.get(c)) for c in cats) + " |")
    if (report.get("rounds_configured") or 1) > 1:
        lines += ["", "## Round by round", "", "| round | arm | accuracy % | object recall % | hallucination % |",
                  "|---|---|---|---|---|"]
        for r in [r for r in report["rounds"] if r["arm"] in ("base", "sicog")]:
            lines.append(f"| {r['round']} | {r['arm']} | {_fmt(r['accuracy'])} | {_fmt(r['object_recall'])} "
                         f"| {_fmt(r['hallucination_rate'])} |")
    lq = report.get("label_quality")
    if lq:
        lines += ["", "## Quality of the stage-1.5 labels against the ground truth", "",
                  "| labels | task | items | object precision % | object recall % | answer accuracy % |",
                  "|---|---|---|---|---|---|"]
        for row in lq.get("rows", []):
            lines.append(f"| {row['labels']} | {row['task']} | {row.get('items', '–')} "
                         f"| {_fmt(row.get('object_precision'))} | {_fmt(row.get('object_recall'))} "
                         f"| {_fmt(row.get('answer_accuracy'))} |")
    cur = report.get("curation") or {}
    if cur:
        lines += ["", "## Curation", ""]
        for rnd, tasks in cur.items():
            for task, v in tasks.items():
                counts, sel = v.get("counts", {}), v.get("selection")
                if sel:
                    lines.append(f"- {rnd} {task}: kept the {sel.get('kept')} of {sel.get('items')} items with the "
                                 f"highest best score (score cut {sel.get('score_cut')}); "
                                 f"{counts.get('stats_extraction_failures', 0)} extraction failures")
                else:
                    lines.append(f"- {rnd} {task}: kept {counts.get('kept', '–')} of "
                                 f"{counts.get('stats_items', '–')} items " + _stats_line(v.get("stats", {})))
    lines += ["", "## Steps", "", "| step | status | seconds |", "|---|---|---|"]
    for s in report["steps"]:
        lines.append(f"| {s['name']} | {s['status']} | {_fmt(s.get('seconds'), pct=False)} |")
    if notes:
        lines += ["", "## Where this run departs from the real recipe", ""] + [f"- {n}" for n in notes]
    if report.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]]
    return "\n".join(lines) + "\n"


def _stats_line(stats: dict) -> str:
    keys = [k for k in ("threshold", "score_quantiles", "quantiles") if k in stats]
    return "; ".join(f"{k}: {json.dumps(stats[k])}" for k in keys)


def make_plots(report: dict, out_dir: Path, score_lists: dict[str, list[float]] | None = None) -> list[str]:
    """accuracy.png (per arm), accuracy_per_category.png, curation_scores.png; returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    arms = report["arms"]
    names = [n for n in arms if arms[n].get("benchmark")]
    if names:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        acc = [100 * (arms[n]["benchmark"]["accuracy"] or 0) for n in names]
        ax.bar(names, acc, color=["#888", "#2a7", "#c84", "#46c"][: len(names)])
        for i, v in enumerate(acc):
            ax.text(i, v + 0.5, f"{v:.1f}", ha="center", fontsize=8)
        ax.set_ylabel("benchmark accuracy (%)")
        ax.set_title("accuracy per arm")
        fig.tight_layout()
        fig.savefig(out_dir / "accuracy.png", dpi=100)
        plt.close(fig)
        made.append("accuracy.png")
        cats = sorted({k for n in names for k in arms[n]["benchmark"].get("per_category", {})})
        if cats:
            fig, ax = plt.subplots(figsize=(7, 3.4))
            width = 0.8 / len(names)
            for i, n in enumerate(names):
                pc = arms[n]["benchmark"]["per_category"]
                ax.bar([j + i * width for j in range(len(cats))], [100 * (pc.get(c) or 0) for c in cats],
                       width=width, label=n)
            ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], cats)
            ax.set_ylabel("accuracy (%)")
            ax.legend(fontsize=8)
            ax.set_title("accuracy per question category")
            fig.tight_layout()
            fig.savefig(out_dir / "accuracy_per_category.png", dpi=100)
            plt.close(fig)
            made.append("accuracy_per_category.png")
    if score_lists is not None:
        score_lists = score_lists or {"(no item was scored)": []}
        fig, axes = plt.subplots(1, len(score_lists), figsize=(4 * len(score_lists), 3), squeeze=False)
        for ax, (label, scores) in zip(axes[0], score_lists.items()):
            if scores:
                ax.hist(scores, bins=30, color="#46c")
            ax.set_title(f"best self-consistency score: {label}", fontsize=9)
            ax.set_xlabel("score")
        fig.tight_layout()
        fig.savefig(out_dir / "curation_scores.png", dpi=100)
        plt.close(fig)
        made.append("curation_scores.png")
    if (report.get("rounds_configured") or 1) > 1:
        fig, ax = plt.subplots(figsize=(5, 3))
        seq = [r for r in report["rounds"] if r["arm"] in ("base", "sicog")]
        ax.plot([r["round"] for r in seq], [100 * (r["accuracy"] or 0) for r in seq], marker="o")
        ax.set_xlabel("round (0 = base)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("accuracy round by round")
        fig.tight_layout()
        fig.savefig(out_dir / "accuracy_rounds.png", dpi=100)
        plt.close(fig)
        made.append("accuracy_rounds.png")
    return made


def curation_score_lists(planner) -> dict[str, list[float]]:
    """Best scores of every curated item (kept or not) per round/task, from the curation outputs."""
    out: dict[str, list[float]] = {}
    for step in planner.steps:
        if step.kind != "curate":
            continue
        label = f"r{step.round} {step.name.rsplit('_', 1)[-1]}"
        scores = _all_best_scores(step)
        if scores:
            out[label] = scores
    return out


def _all_best_scores(step) -> list[float]:
    """Best score per curated item (every scored item when curation ran without a threshold)."""
    scores = []
    curated = Path(step.outputs["curated"])
    if curated.is_file():
        with open(curated, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    if isinstance(rec.get("score"), (int, float)):
                        scores.append(float(rec["score"]))
    return scores


def write_pipeline_report(planner, engine, out_dir: Path, extra: dict | None = None,
                          notes: list[str] | None = None, title: str | None = None) -> dict:
    """Write report.json, report.md and the plots into out_dir; returns the report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(planner, out_dir, extra)
    report["plots"] = make_plots(report, out_dir, curation_score_lists(planner))
    write_json(out_dir / "report.json", report)
    md = render_markdown(report, title or f"sicog run: {planner.cfg.name}", notes)
    (out_dir / "report.md").write_text(md, encoding="utf-8")
    log.info("report: %s", out_dir / "report.md")
    return report


DEMO_DEPARTURES = [
    "Data: a synthetic world of coloured shapes on a 3x3 grid replaces LLaVA-558K / ALLaVA / LLaVA-665K; "
    "its captions, CoD and CoT texts are generated from scene graphs, not written by GPT-4o.",
    "Models: no pretrained CLIP or Qwen2 exists for the world, so stand-ins are pre-trained once (cached, "
    "shared by every seed like public checkpoints) on fresh scenes no other stage sees: a tiny CLIP tower "
    "whose patch tokens are trained to read out the attributes of their grid cell, and a tiny Qwen2 trained "
    "as a causal LM on the world's texts. Both load through the same vision_tower / language_model paths.",
    "Scale: sub-million-parameter models, hundreds of images, max_steps budgets instead of one epoch; every "
    "arm gets the same stage-1.5 and stage-2 steps (budget rule: equal optimizer steps).",
    "Stage 2 data (identical for every arm, see mixture.sft_data) is the world's short-answer instructions "
    "plus its annotated detailed captions, standing in for the detailed-description share of LLaVA-665K.",
    "Sampling: temperature 1.0 (the paper: 0.7) because a tiny model at 0.7 repeats itself (DEMO-NOTES); "
    "curation uses the bundled all-MiniLM-L6-v2 (the paper: NV-Embed-v2).",
    "Evaluation: the world's multiple-choice benchmark and caption object recall / hallucination against "
    "scene graphs stand in for the paper's 12 VLMEvalKit benchmarks. Its headline accuracy is scored by "
    "option likelihood (the paper's VLMEvalKit asks for a letter, shown beside it): the tiny models do not "
    "learn to map an answer to its letter, so letter accuracy stays at chance whatever they know.",
]


def write_demo_report(planner, out: Path, *, preset: str, seed: int, wall_seconds: float,
                      world_step=None) -> dict:
    """report.json / report.md / plots of `sicog demo` in `out` (schema: the loop issue)."""
    from sicog.report_labels import label_quality

    out = Path(out)
    extra = {"preset": preset, "seed": seed, "wall_seconds": round(wall_seconds, 1)}
    report = build_report(planner, out, extra)
    if world_step is not None:
        m_path = Path(planner.work) / "manifests" / "world.json"
        m = json.loads(m_path.read_text(encoding="utf-8")) if m_path.is_file() else {}
        report["steps"].insert(0, {"name": "world", "kind": "world", "round": 0, "arm": None,
                                   "seconds": m.get("seconds", round(world_step.seconds, 3)),
                                   "status": m.get("status", world_step.status), "counts": world_step.counts})
    # what the results cost, even when this invocation skipped every step (a re-run rewrites the report)
    report["steps_seconds"] = round(sum(s.get("seconds") or 0 for s in report["steps"]), 1)
    standins = Path(planner.work) / "standins" / "standins.json"
    if standins.is_file():
        report["standins"] = json.loads(standins.read_text(encoding="utf-8"))
    if planner.data.world:
        try:
            report["label_quality"] = label_quality(planner, planner.data.world)
        except (OSError, KeyError, ValueError) as e:  # a report without this table beats no report
            log.warning("label quality not computed: %s", e)
    report["plots"] = make_plots(report, out, curation_score_lists(planner))
    write_json(out / "report.json", report)
    notes = DEMO_DEPARTURES + list(planner.cfg.demo.notes)
    md = render_markdown(report, f"sicog demo ({preset}, seed {seed})", notes)
    (out / "report.md").write_text(md, encoding="utf-8")
    return report
