"""Run `sicog demo` for several seeds and report mean ± std per arm (the measurement the README reports).

    python benchmarks/demo_seeds.py --preset tiny --seeds 0 1 2 --out runs/demo_seeds
    python benchmarks/demo_seeds.py --out runs/demo_seeds --aggregate-only   # re-read finished runs

Each seed runs in its own folder (`OUT/seed<N>`), so an interrupted sweep resumes where it stopped.
Writes OUT/summary.json and OUT/summary.md: per arm the mean and sample standard deviation of the
benchmark accuracy, caption object recall and hallucination rate, the per-seed figures, the
sicog-minus-base and sicog-minus-uncurated differences per seed, each with its paired 95 % interval
over that seed's questions, and pooled over seeds (mean of the seeds' paired differences with a
stratified bootstrap interval), wall time per seed, and the label quality table (curated vs greedy
vs random labels) averaged over seeds.

Two kinds of interval stand side by side: question-level (bootstrap over one benchmark's questions,
pooled over seeds) and seed-level (Student's t over the seeds' figures, n − 1 degrees of freedom,
sicog.eval.stats.t_interval): the second also covers what changes with the seed (world, samples,
training) and is the one a claim about the method needs. Every arm's accuracy and every comparison
of the report (sicog.pipeline.report.compare.COMPARISONS: the paper's pairs and the controls) gets
both; each question subtype is reported apart, with its shuffled-image control.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sicog.eval.stats import pooled_paired_difference, t_interval
from sicog.pipeline.report.compare import COMPARISONS, per_question_hits

METRICS = (("accuracy", ("benchmark", "accuracy")),
           ("accuracy_generate", ("benchmark", "accuracy_by_scoring", "generate")),
           ("accuracy_shuffled_images", ("benchmark", "accuracy_shuffled_images")),
           ("object_recall", ("captions", "object_recall")),
           ("hallucination_rate", ("captions", "hallucination_rate")))


def _get(d: dict, path: tuple[str, ...]):
    for k in path:
        d = (d or {}).get(k)
    return d


def _mean_std(values: list[float]) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def _hits(report: dict, report_dir: Path | None, arm: str) -> dict[str, float] | None:
    rel = (report["arms"].get(arm) or {}).get("evaluation")
    return per_question_hits(str(report_dir / rel)) if report_dir is not None and rel else None


#: the arms' order in the tables (others after, by name)
ARM_ORDER = ("base", "base_long", "sicog", "uncurated_valid", "uncurated", "annotated", "oracle", "oracle_noised")


def paired(reports: dict[int, dict], dirs: dict[int, Path]) -> dict:
    """Per comparison: each seed's paired difference + interval (report.json), the pooled one
    (question-level) and the t interval of the seeds' differences (seed-level)."""
    out = {}
    for a, b in COMPARISONS:
        per_seed = {s: next((c for c in r.get("comparisons", []) if (c["arm"], c["against"]) == (a, b)), None)
                    for s, r in reports.items()}
        strata = [(ha, hb) for s, r in reports.items()
                  if (ha := _hits(r, dirs.get(s), a)) is not None and (hb := _hits(r, dirs.get(s), b)) is not None]
        if any(per_seed.values()) or strata:
            out[f"{a}-{b}"] = {"per_seed": per_seed, "pooled": pooled_paired_difference(strata) if strata else None,
                               "seeds_t": t_interval([c["difference"] for c in per_seed.values() if c])}
    return out


def benchmark_list(reports: dict[int, dict], dirs: dict[int, Path]) -> dict:
    """The `evaluation.benchmarks` list over seeds: each arm's headline (mean ± std), and per
    comparison and benchmark each seed's paired difference and, where the headline is an item
    mean, the pooled one (items resampled within each seed, sicog.eval.stats)."""
    from sicog.pipeline.report.compare import benchmark_scores

    names = sorted({n for r in reports.values() for a in r["arms"].values() for n in (a.get("benchmarks") or {})})
    arms = {arm: {n: _mean_std([((r["arms"].get(arm) or {}).get("benchmarks") or {}).get(n, {}).get("value")
                                for r in reports.values()]) for n in names}
            for arm in sorted({a for r in reports.values() for a in r["arms"]})}
    diffs: dict = {}
    for a, b in COMPARISONS:
        for n in names:
            per_seed = {s: next((c for c in r.get("benchmark_comparisons", []) if (c["arm"], c["against"],
                                 c["benchmark"]) == (a, b, n)), None) for s, r in reports.items()}
            if not any(per_seed.values()):
                continue
            strata, scale = [], 100.0
            for s, r in reports.items():
                ev = {arm: (r["arms"].get(arm) or {}).get("evaluation") for arm in (a, b)}
                if dirs.get(s) is None or None in ev.values():
                    continue
                sa = benchmark_scores(str(dirs[s] / ev[a])).get(n)
                sb = benchmark_scores(str(dirs[s] / ev[b])).get(n)
                if sa and sb and sa["paired"] and sb["paired"]:
                    strata.append((sa["items"], sb["items"]))
                    scale = float(sa.get("scale", 100.0))
            pooled = pooled_paired_difference(strata) if strata else None
            if pooled:
                pooled = {**pooled, "difference": pooled["difference"] * scale,
                          "ci95": [v * scale for v in pooled["ci95"]]}
            diffs[f"{a}-{b} {n}"] = {"per_seed": per_seed, "pooled": pooled,
                                     "mean_std": _mean_std([c["difference"] for c in per_seed.values() if c])}
    return {"names": names, "arms": arms, "differences": diffs}


def aggregate(reports: dict[int, dict], dirs: dict[int, Path] | None = None) -> dict:
    arms = sorted({a for r in reports.values() for a in r["arms"]},
                  key=lambda a: (ARM_ORDER.index(a) if a in ARM_ORDER else len(ARM_ORDER), a))
    out: dict = {"seeds": sorted(reports), "arms": {}, "differences": {}, "wall_seconds": {}, "label_quality": {}}
    for arm in arms:
        out["arms"][arm] = {}
        for name, path in METRICS:
            per_seed = {s: _get(r["arms"].get(arm, {}), path) for s, r in reports.items()}
            out["arms"][arm][name] = {**_mean_std(list(per_seed.values())), "per_seed": per_seed,
                                      "seeds_t": t_interval(list(per_seed.values()))}
    cats = sorted({c for r in reports.values() for a in r["arms"].values()
                   for c in (a.get("benchmark", {}).get("per_category") or {})})
    out["per_category"] = {
        arm: {c: {key: _mean_std([_get(r["arms"].get(arm, {}), ("benchmark", key, c)) for r in reports.values()])
                  for key in ("per_category", "per_category_shuffled_images")} for c in cats}
        for arm in arms}
    subs = sorted({c for r in reports.values() for a in r["arms"].values()
                   for c in (a.get("benchmark", {}).get("per_subcategory") or {})})
    out["per_subcategory"] = {
        arm: {c: {key: _mean_std([(_get(r["arms"].get(arm, {}), ("benchmark", key, c)) or {}).get("accuracy")
                                  for r in reports.values()])
                  for key in ("per_subcategory", "per_subcategory_shuffled_images")} for c in subs}
        for arm in arms}
    for a, b in COMPARISONS:
        if a in out["arms"] and b in out["arms"]:
            diffs = {s: (_get(r["arms"].get(a, {}), ("benchmark", "accuracy")) or 0)
                     - (_get(r["arms"].get(b, {}), ("benchmark", "accuracy")) or 0) for s, r in reports.items()}
            out["differences"][f"{a}-{b} accuracy"] = {**_mean_std(list(diffs.values())), "per_seed": diffs,
                                                       "seeds_t": t_interval(list(diffs.values()))}
            rec = {s: (_get(r["arms"].get(a, {}), ("captions", "object_recall")) or 0)
                   - (_get(r["arms"].get(b, {}), ("captions", "object_recall")) or 0) for s, r in reports.items()}
            out["differences"][f"{a}-{b} object_recall"] = {**_mean_std(list(rec.values())), "per_seed": rec,
                                                            "seeds_t": t_interval(list(rec.values()))}
    out["paired"] = paired(reports, dirs or {})
    out["benchmark_list"] = benchmark_list(reports, dirs or {})
    out["wall_seconds"] = {s: r.get("wall_seconds") for s, r in reports.items()}
    out["steps_seconds"] = {s: r.get("steps_seconds") for s, r in reports.items()}
    rows: dict[tuple, list] = {}
    for r in reports.values():
        for row in (r.get("label_quality") or {}).get("rows", []):
            for metric in ("object_precision", "object_recall", "answer_accuracy"):
                if row.get(metric) is not None:
                    rows.setdefault((row["round"], row["task"], row["labels"], metric), []).append(row[metric])
    out["label_quality"] = [{"round": k[0], "task": k[1], "labels": k[2], "metric": k[3], **_mean_std(v)}
                            for k, v in sorted(rows.items())]
    return out


def _t(stat: dict | None, sign: bool = False) -> str:
    """"[lo, hi]": the seed-level 95 % t interval in points (– with fewer than two seeds)."""
    ci = (stat or {}).get("ci95")
    if not ci:
        return "–"
    f = "{:+.1f}" if sign else "{:.1f}"
    return "[" + f.format(100 * ci[0]) + ", " + f.format(100 * ci[1]) + "]"


def _pm(stat: dict, scale: float = 100.0) -> str:
    if stat.get("mean") is None:
        return "–"
    return f"{scale * stat['mean']:.1f} ± {scale * stat['std']:.1f}"


def render(summary: dict, preset: str) -> str:
    seeds = summary["seeds"]
    lines = [f"# sicog demo --preset {preset}: {len(seeds)} seeds ({', '.join(map(str, seeds))})", "",
             "mean ± sample std over seeds, in %; *seeds 95 %*: the t interval of the mean over the seeds "
             "(n − 1 degrees of freedom), the seed-level interval", "",
             "benchmark accuracy: the report's headline scoring (the demo: option likelihood); generate: the "
             "reply the model writes (the tiny preset: a step-by-step answer to the open question, open_cot, "
             "on the first 500 questions); shuffled images: the headline scoring with every item's image "
             "swapped for another's (what the question alone gives)", "",
             "| arm | benchmark accuracy | seeds 95 % | generate | shuffled images | caption object recall "
             "| hallucination rate |",
             "|---|---|---|---|---|---|---|"]
    for arm, m in summary["arms"].items():
        lines.append(f"| {arm} | {_pm(m['accuracy'])} | {_t(m['accuracy'].get('seeds_t'))} | "
                     f"{_pm(m['accuracy_generate'])} | "
                     f"{_pm(m['accuracy_shuffled_images'])} | {_pm(m['object_recall'])} | "
                     f"{_pm(m['hallucination_rate'])} |")
    lines += ["", "| difference | mean ± std | seeds 95 % (t) | per seed |", "|---|---|---|---|"]
    for name, d in summary["differences"].items():
        per = ", ".join(f"{100 * v:+.1f}" for v in d["per_seed"].values())
        lines.append(f"| {name} | {_pm(d)} | {_t(d.get('seeds_t'), True)} | {per} |")
    if summary.get("paired"):
        lines += ["", "Paired differences on the same questions, in points: per seed with its 95 % interval over "
                  "that seed's questions; pooled = mean over seeds with a stratified bootstrap interval "
                  "(question-level: question-sampling noise only); seeds (t) = the t interval of the seeds' "
                  "differences (seed-level: what changes with the seed as well)", "",
                  "| difference | pooled [95 % interval] | seeds [95 %, t] | per seed [95 % interval] |",
                  "|---|---|---|---|"]
        for name, d in summary["paired"].items():
            per = "; ".join(f"{s}: {100 * c['difference']:+.1f} [{100 * c['ci95'][0]:+.1f}, {100 * c['ci95'][1]:+.1f}]"
                            for s, c in d["per_seed"].items() if c)
            p = d.get("pooled")
            pooled = (f"{100 * p['difference']:+.1f} [{100 * p['ci95'][0]:+.1f}, {100 * p['ci95'][1]:+.1f}]"
                      if p else "–")
            lines.append(f"| {name} | {pooled} | {_t(d.get('seeds_t'), True)} | {per or '–'} |")
    bl = summary.get("benchmark_list") or {}
    if bl.get("names"):
        lines += ["", "Benchmarks of `evaluation.benchmarks` (headline figure, mean ± std over seeds)", "",
                  "| arm | " + " | ".join(bl["names"]) + " |", "|---|" + "---|" * len(bl["names"])]
        for arm, per in bl["arms"].items():
            lines.append(f"| {arm} | " + " | ".join(_pm(per[n], 1.0) for n in bl["names"]) + " |")
        lines += ["", "| difference | pooled [95 % interval] (item means only) | mean ± std of the seeds |",
                  "|---|---|---|"]
        for name, d in bl["differences"].items():
            p = d.get("pooled")
            pooled = f"{p['difference']:+.2f} [{p['ci95'][0]:+.2f}, {p['ci95'][1]:+.2f}]" if p else "–"
            lines.append(f"| {name} | {pooled} | {_pm(d['mean_std'], 1.0)} |")
    cats = sorted({c for per in summary.get("per_category", {}).values() for c in per})
    if cats:
        lines += ["", "Accuracy per question category (headline scoring; in brackets: with shuffled images)", "",
                  "| arm | " + " | ".join(cats) + " |", "|---|" + "---|" * len(cats)]
        for arm, per in summary["per_category"].items():
            cells = [f"{_pm(per[c]['per_category'])} ({_pm(per[c]['per_category_shuffled_images'])})"
                     if c in per else "–" for c in cats]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    subs = sorted({c for per in summary.get("per_subcategory", {}).values() for c in per})
    if subs:
        lines += ["", "Accuracy per question subtype (headline scoring, mean ± std over seeds; in brackets: with "
                  "shuffled images)", "", "| arm | " + " | ".join(subs) + " |", "|---|" + "---|" * len(subs)]
        for arm, per in summary["per_subcategory"].items():
            cells = [f"{_pm(per[c]['per_subcategory'])} ({_pm(per[c]['per_subcategory_shuffled_images'])})"
                     if c in per else "–" for c in subs]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if summary["label_quality"]:
        lines += ["", "Label quality against the ground truth (round 1, mean ± std over seeds, %)", "",
                  "| task | labels | metric | value |", "|---|---|---|---|"]
        for row in summary["label_quality"]:
            lines.append(f"| {row['task']} | {row['labels']} | {row['metric']} | {_pm(row)} |")
    walls = [w for w in summary["wall_seconds"].values() if w]
    if walls:
        lines += ["", f"wall time per seed (last invocation): {', '.join(f'{w:.0f} s' for w in walls)}"]
    steps = [w for w in summary.get("steps_seconds", {}).values() if w]
    if steps:
        lines += ["", f"time of all steps per seed: {', '.join(f'{w:.0f} s' for w in steps)}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=("smoke", "tiny", "controls", "mechanism"),
                   help="demo preset (default tiny)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run (default 0 1 2)")
    p.add_argument("--out", default="runs/demo_seeds", help="folder for seed<N>/ runs and the summary")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="pipeline override passed to every seed's demo (repeatable)")
    p.add_argument("--aggregate-only", action="store_true", help="do not run; aggregate finished seeds")
    p.add_argument("--parallel", type=int, default=1,
                   help="seeds run at once (each then runs one step at a time on one torch thread; default 1 = one after another)")
    args = p.parse_args(argv)
    out = Path(args.out)
    cmds = {}
    for seed in args.seeds:
        cmd = [sys.executable, "-m", "sicog", "demo", "--preset", args.preset, "--out", str(out / f"seed{seed}"),
               "--seed", str(seed)]
        overrides = list(args.overrides)
        if args.parallel > 1:   # seeds side by side: one step at a time each, one torch thread
            overrides += [o for o in ("launcher.threads=1", "parallel_steps=1")
                          if not any(x.startswith(o.split("=")[0] + "=") for x in overrides)]
        for o in overrides:
            cmd += ["--set", o]
        cmds[seed] = cmd
    if not args.aggregate_only:
        pending, running, t0 = list(args.seeds), {}, time.time()
        out.mkdir(parents=True, exist_ok=True)
        while pending or running:
            while pending and len(running) < max(1, args.parallel):
                seed = pending.pop(0)
                log = open(out / f"seed{seed}.log", "w", encoding="utf-8")
                print(f"seed {seed}: {' '.join(cmds[seed])} (log {log.name})", flush=True)
                running[seed] = (subprocess.Popen(cmds[seed], stdout=log, stderr=subprocess.STDOUT), log)
            time.sleep(2)
            for seed, (proc, log) in list(running.items()):
                if proc.poll() is not None:
                    log.close()
                    print(f"seed {seed}: exit {proc.returncode} after {time.time() - t0:.0f} s", flush=True)
                    del running[seed]
    reports, dirs = {}, {}
    for seed in args.seeds:
        report_path = out / f"seed{seed}" / "report.json"
        if report_path.is_file():
            reports[seed] = json.loads(report_path.read_text(encoding="utf-8"))
            dirs[seed] = report_path.parent
    if not reports:
        print("no finished seeds", file=sys.stderr)
        return 1
    summary = aggregate(reports, dirs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    md = render(summary, args.preset)
    (out / "summary.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
