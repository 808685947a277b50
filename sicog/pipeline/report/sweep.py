"""The table of a sweep (`sicog run … --sweep`): one row per point, written as sweep.json and sweep.md.

A row holds the point's swept values, each arm's benchmark accuracy (with its 95 % interval over
questions), the records curation kept per round and task, and what the point's steps did in this
invocation: ran, skipped as complete, or served by another point of the sweep (a step shared by
several points runs once; a smaller N reads the first candidates of a larger one).
"""

from __future__ import annotations

from pathlib import Path

from sicog.eval.outputs import read_summary
from sicog.pipeline.actions import count_lines
from sicog.pipeline.arms import arm_names
from sicog.utils.io import atomic_write, write_json


def sweep_rows(sweep, engine) -> list[dict]:
    status = {r.name: r.status for r in engine.results}
    owners: dict[str, int] = {}
    for point in sweep.points:
        for step in point.steps:
            owners[step.name] = owners.get(step.name, 0) + 1
    rows = []
    for point in sweep.points:
        p = point.planner
        arms = {}
        for (r, arm), folder in sorted(p.evaluations.items(), key=lambda kv, order=arm_names(p.cfg.arms): (
                kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else len(order), kv[0][1])):
            # the config's order of arms, then post-training arms
            mcq = (read_summary(folder) or {}).get("mcq") or read_summary(folder) or {}
            arms[arm if r <= 1 else f"{arm} (round {r})"] = {"accuracy": mcq.get("accuracy"), "ci95": mcq.get("ci95"),
                                                             "n": mcq.get("n")}
        curated = {f"r{k} {task}": count_lines(path) if Path(path).is_file() else None
                   for (k, task), path in sorted(p.curated.items())}
        steps = {"ran": 0, "skipped": 0, "planned": 0, "shared": 0, "served_by_larger_n": len(point.derived)}
        for step in point.steps:
            state = status.get(step.name, "planned")
            steps[{"ran": "ran", "resumed": "ran", "skipped": "skipped"}.get(state, "planned")] += 1
            steps["shared"] += owners[step.name] > 1
        rows.append({"values": point.values, "arms": arms, "curated_records": curated, "steps": steps})
    return rows


def render_sweep(sweep, rows: list[dict]) -> str:
    arms = list(dict.fromkeys(a for row in rows for a in row["arms"]))
    curated = list(dict.fromkeys(c for row in rows for c in row["curated_records"]))
    lines = ["# Sweep", "", f"{len(rows)} points over {', '.join(f'`{k}`' for k in sweep.keys)}; "
             f"{len(sweep.steps)} distinct steps. Accuracy % with its 95 % interval over questions.", "",
             "| " + " | ".join([*sweep.keys, *(f"{a} %" for a in arms), *(f"kept {c}" for c in curated),
                                 "steps ran / skipped / shared / from larger N"]) + " |",
             "|" + "---|" * (len(sweep.keys) + len(arms) + len(curated) + 1)]
    for row in rows:
        cells = [str(row["values"][k]) for k in sweep.keys]
        for a in arms:
            acc = row["arms"].get(a, {})
            ci = acc.get("ci95")
            cells.append("–" if acc.get("accuracy") is None else f"{100 * acc['accuracy']:.1f}" +
                         (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci and None not in ci else ""))
        cells += ["–" if row["curated_records"].get(c) is None else str(row["curated_records"][c]) for c in curated]
        s = row["steps"]
        cells.append(f"{s['ran']} / {s['skipped']} / {s['shared']} / {s['served_by_larger_n']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_sweep_report(sweep, engine, out_dir: Path) -> list[dict]:
    """sweep.json and sweep.md in out_dir (the sweep's work_dir); returns the rows."""
    rows = sweep_rows(sweep, engine)
    write_json(out_dir / "sweep.json", {"keys": sweep.keys, "points": rows,
                                        "affected_by": sweep.affects, "distinct_steps": len(sweep.steps)})
    with atomic_write(out_dir / "sweep.md") as fh:
        fh.write(render_sweep(sweep, rows))
    return rows
