"""report.md of a pipeline run: tables of arms, categories, rounds, curation and steps."""

from __future__ import annotations

import json


def _fmt(v, pct: bool = True) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.1f}" if pct else f"{v:.3g}"


def _with_ci(v, ci) -> str:
    """"35.3 [33.2, 37.4]": an accuracy with its 95 % bootstrap interval, when there is one."""
    return _fmt(v) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci and None not in ci else "")


def _signed(v) -> str:
    return "–" if v is None else f"{100 * v:+.1f}"


def _scoring_cell(b: dict, way: str) -> str:
    """A second scoring's accuracy, with its interval and, when it read fewer questions, their number."""
    m = (b.get("by_scoring") or {}).get(way)
    if not m:
        return _fmt(b.get("accuracy_by_scoring", {}).get(way))
    cell = _with_ci(m.get("accuracy"), m.get("ci95"))
    style = b.get("prompt_style") if way == "generate" and b.get("prompt_style") not in (None, "direct") else None
    if m.get("n") == b.get("n") and not style:
        return cell
    return cell + " (" + ", ".join([f"n {m['n']}"] + ([style] if style else [])) + ")"


def _subtype_table(report: dict) -> list[str]:
    """Accuracy per question subtype (the benchmark's l2-category), each arm with its interval, and the
    shuffled-image control of the same subtype: a gain confined to one skill shows here."""
    arms = report["arms"]
    subs = sorted({k for a in arms.values() for k in a.get("benchmark", {}).get("per_subcategory") or {}})
    if not subs:
        return []
    lines = ["", "### Accuracy per question subtype (%, 95 % interval over that subtype's questions)", "",
             "| arm | " + " | ".join(f"{s} (n {_sub_n(arms, s)})" for s in subs) + " |", "|---|" + "---|" * len(subs)]
    for suffix, key in (("", "per_subcategory"), (", shuffled images", "per_subcategory_shuffled_images")):
        for name, a in arms.items():
            ps = a.get("benchmark", {}).get(key)
            if ps:
                lines.append(f"| {name}{suffix} | " + " | ".join(
                    _with_ci((ps.get(s) or {}).get("accuracy"), (ps.get(s) or {}).get("ci95")) for s in subs) + " |")
    return lines


def _sub_n(arms: dict, sub: str):
    return next(((a["benchmark"]["per_subcategory"].get(sub) or {}).get("n") for a in arms.values()
                 if (a.get("benchmark", {}).get("per_subcategory") or {}).get(sub)), "–")


def render_markdown(report: dict, title: str, notes: list[str] | None = None,
                    sections: list[str] | None = None) -> str:
    """The report as markdown; `notes` list departures from the real recipe, `sections` are extra lines."""
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
    style = next((a["benchmark"].get("prompt_style") for a in report["arms"].values() if a.get("benchmark")), None)
    lines += ["## Arms (round 1)", ""]
    if headline:
        lines += [f"Benchmark accuracy is scored by **{headline}**" +
                  (f"; also shown: {', '.join(others)}" if others else "") +
                  (" (generate: the model's own step-by-step answer to the open question, matched to the option "
                   "texts (open_cot); " if style == "open_cot" else " (generate: the option letter the model writes; ")
                  + "likelihood: the option text it finds most probable as the answer to the open question).", ""]
    blind = any("accuracy_shuffled_images" in a.get("benchmark", {}) for a in report["arms"].values())
    if blind:
        lines += ["*shuffled images*: the same questions, each with another item's image — what the question "
                  "alone gives; the gap to the accuracy is what the model reads from the image.", ""]
    lines += ["Accuracies carry a 95 % bootstrap interval over the questions in brackets.", ""]
    lines += ["| arm | benchmark accuracy % | " + "".join(f"{w} % | " for w in others) +
              ("shuffled images % | " if blind else "") + "n | caption object recall % | hallucination rate % "
              "| checkpoint |", "|---|---|" + "---|" * (len(others) + blind) + "---|---|---|---|"]
    for name, a in report["arms"].items():
        b, c = a.get("benchmark", {}), a.get("captions", {})
        extra = "".join(f"{_scoring_cell(b, w)} | " for w in others)
        if blind:
            extra += f"{_with_ci(b.get('accuracy_shuffled_images'), b.get('ci95_shuffled_images'))} | "
        lines.append(f"| {name} | {_with_ci(b.get('accuracy'), b.get('ci95'))} | {extra}{b.get('n', '–')} | "
                     f"{_fmt(c.get('object_recall'))} | {_fmt(c.get('hallucination_rate'))} | `{a['checkpoint']}` |")
    notes = [f"- `{name}`: {a['note']}" for name, a in report["arms"].items() if a.get("note")]
    if notes:
        lines += ["", "What each arm is (its entry of the arms table):", "", *notes]
    if report.get("comparisons"):
        lines += ["", "### Paired differences (same questions)", "",
                  "Each question scored for both arms; the interval resamples questions in pairs, so it is "
                  "much tighter than the two arms' own intervals. An interval above 0 means the first arm is "
                  "better beyond question-sampling noise.", "",
                  "| arm − against | difference (points) | 95 % interval | questions |", "|---|---|---|---|"]
        for c in report["comparisons"]:
            lo, hi = c["ci95"]
            lines.append(f"| {c['arm']} − {c['against']} | {_signed(c['difference'])} | "
                         f"[{_signed(lo)}, {_signed(hi)}] | {c['n']} |")
    lines += _benchmark_tables(report)
    lines += _overlap_table(report)
    lines += _subtype_table(report)
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
    lines += _monitor_tables(report.get("monitor") or [])
    lines += _post_training(report["arms"])
    lines += list(sections or [])  # a caller's own tables (e.g. the demo's label quality)
    cur = report.get("curation") or {}
    if cur:
        lines += ["", "## Curation", ""]
        for rnd, tasks in cur.items():
            for task, v in tasks.items():
                counts = v.get("counts", {})
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


def _benchmark_tables(report: dict) -> list[str]:
    """The `evaluation.benchmarks` list: one table of scores, one of paired differences."""
    names = list(dict.fromkeys(n for a in report["arms"].values() for n in (a.get("benchmarks") or {})))
    if not names:
        return []
    lines = ["", "### Benchmarks (scored as VLMEvalKit scores them)", "",
             "Each cell is the benchmark's headline figure (" + ", ".join(
                 f"{n}: {next(a['benchmarks'][n]['headline'] for a in report['arms'].values() if n in (a.get('benchmarks') or {}))}"
                 for n in names) + ").", "",
             "| arm | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for arm, a in report["arms"].items():
        b = a.get("benchmarks") or {}
        lines.append(f"| {arm} | " + " | ".join(f"{b[n]['value']:.2f}" if n in b else "–" for n in names) + " |")
    comps = report.get("benchmark_comparisons") or []
    if comps:
        lines += ["", "### Paired differences per benchmark", "",
                  "Same items for both arms. *paired*: the headline is a mean over items, so the interval "
                  "resamples item differences; *bootstrap*: it is not (POPE's F1, MME's sums), so items are "
                  "resampled together for both arms and the figure recomputed on each side.", "",
                  "| arm − against | benchmark | difference | 95 % interval | method | items |",
                  "|---|---|---|---|---|---|"]
        for c in comps:
            lo, hi = c["ci95"]
            lines.append(f"| {c['arm']} − {c['against']} | {c['benchmark']} | {c['difference']:+.2f} | "
                         f"[{lo:+.2f}, {hi:+.2f}] | {c['method']} | {c['n']} |")
    return lines


def _overlap_table(report: dict) -> list[str]:
    """Counts of `sicog data overlap` of each arm's stage-1.5 data against the benchmarks."""
    audit = report.get("overlap") or {}
    if not audit:
        return []
    lines = ["", "### Stage-1.5 data against the benchmarks (sicog data overlap)", "",
             "| data | benchmark | items flagged | records flagged | exact images | near images | questions |",
             "|---|---|---|---|---|---|---|"]
    for name, a in audit.items():
        if not isinstance(a, dict) or "error" in a:
            lines.append(f"| {name} | – | {a.get('error') if isinstance(a, dict) else a} | | | | |")
            continue
        for bench, c in a["benchmarks"].items():
            lines.append(f"| {name} ({a['records']} records) | {bench} | {c['benchmark_items_flagged']}/"
                         f"{c['benchmark_items']} | {c['records_flagged']} | {c['image_exact_pairs']} | "
                         f"{c['image_near_pairs']} | {c['question_pairs']} |")
    return lines


def _post_training(arms: dict) -> list[str]:
    """The DPO arms: held-out pair metrics before -> after, beside the benchmark accuracy."""
    dpo = {name: a for name, a in arms.items() if a.get("dpo")}
    if not dpo:
        return []
    lines = ["", "## Post-training (DPO)", "",
             "Held-out preference pairs: *reward accuracy* is the share of pairs whose implicit reward "
             "beta x (log pi - log ref) is higher for chosen (ties one half, so 50 % before training); "
             "*likelihood accuracy* the share the model itself finds likelier for chosen.", "",
             "| arm | loss | reference | steps | pairs (train / held out) | reward accuracy % | margin | likelihood accuracy % "
             "| benchmark accuracy % |", "|---|---|---|---|---|---|---|---|---|"]
    for name, a in dpo.items():
        d = a["dpo"]
        if d.get("note"):  # post_training.on_empty: skip
            lines.append(f"| {name} | {d['note']} | | 0 | 0 | | | | {_fmt(a.get('benchmark', {}).get('accuracy'))} |")
            continue
        before, after = d.get("heldout_before") or {}, d.get("heldout_after") or {}
        lines.append(f"| {name} | {d.get('loss_type')} (beta {d.get('beta')}) | {d.get('reference')} | "
                     f"{d.get('steps')} | {d.get('train_pairs', '–')} / {d.get('heldout_pairs', '–')} | {_fmt(before.get('rewards/accuracy'))} -> "
                     f"{_fmt(after.get('rewards/accuracy'))} | {_fmt(after.get('rewards/margin'), pct=False)} | "
                     f"{_fmt(before.get('logps/accuracy'))} -> {_fmt(after.get('logps/accuracy'))} | "
                     f"{_fmt(a.get('benchmark', {}).get('accuracy'))} |")
    return lines


def _stats_line(stats: dict) -> str:
    keys = [k for k in ("threshold", "keep_fraction", "score_cut", "extraction_failures") if stats.get(k) is not None]
    return "; ".join(f"{k}: {json.dumps(stats[k])}" for k in keys)




def _monitor_tables(rounds: list[dict]) -> list[str]:
    """The round monitor (sicog.pipeline.monitor): teacher probe accuracy, collapse signals, warnings."""
    if not rounds:
        return []
    lines = ["", "## Round monitor", "",
             "Per round: the sicog arm's benchmark accuracy; the teacher's (the reasoning warm-up model's) "
             "accuracy on the labelled probe, answering greedily step by step; and collapse signals of the "
             "curated labels (distinct-n: distinct word n-grams / all; copied: labels identical to one of "
             "the previous round's; answer entropy: of the CoT labels' final answers). Thresholds: "
             "docs/round_monitor.md.", "",
             "| round | accuracy % | teacher probe % (answered / items) | task | labels | distinct-1 | distinct-2 "
             "| words mean / median | answer entropy bits (distinct; top answer share %) | copied % |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rounds:
        probe = r.get("teacher_probe")
        probe_text = (f"{_fmt(probe['accuracy'])} ({probe['answered']} / {probe['items']})" if probe else "–")
        for task, s in (r.get("curated") or {}).items():
            mean, median = s.get("mean_words"), s.get("median_words")
            words = "–" if mean is None else f"{mean:.1f} / {median:g}"
            if s.get("answer_entropy_bits") is not None:
                ans = (f"{s['answer_entropy_bits']:.2f} ({s['distinct_answers']}; "
                       f"{_fmt(s['top_answer_share'])} {s['top_answer']!r})")
            else:
                ans = "–"
            lines.append(f"| {r['round']} | {_fmt(r.get('accuracy'))} | {probe_text} | {task} | {s.get('labels')} | "
                         f"{_fmt(s.get('distinct_1'), pct=False)} | {_fmt(s.get('distinct_2'), pct=False)} | {words} "
                         f"| {ans} | {_fmt(s.get('copied_share'))} |")
        if not r.get("curated"):
            lines.append(f"| {r['round']} | {_fmt(r.get('accuracy'))} | {probe_text} | – | | | | | | |")
    warned = [(r["round"], w) for r in rounds for w in r.get("warnings") or []]
    lines += ["", "Warnings: " + ("none." if not warned else "")]
    lines += [f"- round {k}: {w}" for k, w in warned]
    return lines
