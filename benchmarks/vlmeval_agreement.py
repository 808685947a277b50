"""VLMEvalKit's own run.py against `sicog evaluate`, item by item, on one benchmark TSV.

For each checkpoint, runs
  * `sicog evaluate --mcq-scoring generate` on the TSV, and
  * VLMEvalKit's run.py through `python -m sicog.eval.vlmeval` (the TSV copied into a fresh
    `$LMUData` as a custom dataset, `--judge exact_matching`, a fresh work dir: nothing cached
    from an earlier run can be reused),
then prints per item whether the two replies are identical and whether VLMEvalKit's hit equals
the hit of sicog's reply under `sicog.eval.vlmevalkit_matching` (and under sicog's own
extraction), and the totals; `agreement.json` in --out holds them. Exit status 1 when a reply or
a hit differs.

    python benchmarks/vlmeval_agreement.py --benchmark runs/world/benchmark.tsv \\
        --model runs/sft_base/final --model runs/r1/sft_sicog/final --prompt-style cot --out runs/agree

With --scorers it checks sicog's scorers instead (sicog.eval.scores): for every benchmark type
of the paper it makes a VLMEvalKit-format benchmark TSV and prediction file
(tests/eval/_vlmeval_tables.py: replies chosen to hit each rule's edge cases), scores it with
sicog and with the real VLMEvalKit's own `evaluate` of that dataset (run by
benchmarks/_vlmevalkit_score.py with --vlmeval-python, the environment VLMEvalKit is installed
in), and compares every figure VLMEvalKit reports and, where its intermediate files have them,
every item (MCQ hits, yes/no readings, MM-Vet grades, MathVista readings). MM-Vet and MathVista
are judged by a loopback OpenAI-compatible stub (tests/eval/_judge_server.py: its verdict is a
function of the prompt, so equal verdicts mean equal prompts) that both sides call:

    python benchmarks/vlmeval_agreement.py --scorers --out runs/agree_scorers \
        --vlmeval-python /path/to/vlmeval-venv/bin/python [--items 200] [--seed 0]

Needs VLMEvalKit importable (pip install 'sicog[vlmeval]'); never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

DATASET = "sicog_agreement"   # a name VLMEvalKit does not know: read as a custom TSV from $LMUData


def run(cmd: list[str], env: dict | None = None, log: Path | None = None) -> None:
    print("$", " ".join(cmd), flush=True)
    with open(log, "w") if log else open(os.devnull, "w") as fh:
        rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        sys.exit(f"command failed with exit status {rc} (log: {log})")


def vlmevalkit_rows(xlsx: Path) -> dict[str, dict]:
    """index -> {prediction, hit} of VLMEvalKit's `*_exact_matching_result.xlsx`."""
    from openpyxl import load_workbook

    ws = load_workbook(xlsx, read_only=True).active
    rows = ws.iter_rows(values_only=True)
    header = [str(h) for h in next(rows)]
    i_index, i_pred, i_hit = header.index("index"), header.index("prediction"), header.index("hit")
    return {str(r[i_index]): {"prediction": "" if r[i_pred] is None else str(r[i_pred]), "hit": int(r[i_hit])}
            for r in rows if r[i_index] is not None}


def compare(sicog_jsonl: Path, vlm: dict[str, dict]) -> dict:
    """Item-by-item agreement of sicog's `mcq_predictions.jsonl` with VLMEvalKit's result rows."""
    items = []
    for line in sicog_jsonl.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        v = vlm.get(str(r["index"]))
        items.append({"index": str(r["index"]), "in_vlmevalkit": v is not None,
                      "same_reply": v is not None and v["prediction"].strip() == r["prediction"].strip(),
                      "vlmevalkit_hit": None if v is None else v["hit"],
                      "sicog_hit_vlmevalkit_matching": int(r["correct_vlmevalkit"]),
                      "sicog_hit_own_extraction": int(r["correct"])})
    n = len(items)
    return {
        "n": n,
        "identical_replies": sum(i["same_reply"] for i in items),
        "identical_hits_vlmevalkit_matching": sum(i["vlmevalkit_hit"] == i["sicog_hit_vlmevalkit_matching"]
                                                  for i in items),
        "identical_hits_own_extraction": sum(i["vlmevalkit_hit"] == i["sicog_hit_own_extraction"] for i in items),
        "vlmevalkit_accuracy": sum(i["vlmevalkit_hit"] or 0 for i in items) / n,
        "sicog_accuracy_vlmevalkit_matching": sum(i["sicog_hit_vlmevalkit_matching"] for i in items) / n,
        "sicog_accuracy_own_extraction": sum(i["sicog_hit_own_extraction"] for i in items) / n,
        "items": items,
    }


def agree_one(model: Path, name: str, args, lmu: Path) -> dict:
    out = Path(args.out) / name
    py = sys.executable
    started = time.time()
    cmd = [py, "-m", "sicog", "evaluate", "--model", str(model), "--benchmark", str(args.benchmark),
           "--out", str(out / "sicog"), "--prompt-style", args.prompt_style, "--mcq-scoring", "generate",
           "--captions", "off", "--batch-size", str(args.batch_size), "--no-progress"]
    if args.max_new_tokens:
        cmd += ["--max-new-tokens", str(args.max_new_tokens)]
    run(cmd, log=out.with_suffix(".sicog.log"))
    sicog_s = time.time() - started
    started = time.time()
    cmd = [py, "-m", "sicog.eval.vlmeval", "--model", str(model), "--name", name,
           "--prompt-style", args.prompt_style, "--image-dir", str(Path(args.out) / "images")]
    if args.max_new_tokens:
        cmd += ["--max-new-tokens", str(args.max_new_tokens)]
    cmd += ["--", "--data", DATASET, "--work-dir", str(out / "vlmeval"), "--judge", "exact_matching"]
    run(cmd, env={**os.environ, "LMUData": str(lmu)}, log=out.with_suffix(".vlmeval.log"))
    vlm_s = time.time() - started
    result = next((out / "vlmeval" / name).glob(f"*/{name}_{DATASET}_exact_matching_result.xlsx"))
    report = compare(out / "sicog" / "mcq_predictions.jsonl", vlmevalkit_rows(result))
    report.update(model=str(model), prompt_style=args.prompt_style, sicog_seconds=round(sicog_s, 1),
                  vlmevalkit_seconds=round(vlm_s, 1))
    return report


TOLERANCE = 1e-6


def _vlmevalkit_metrics(name: str, result) -> dict[str, float]:
    """VLMEvalKit's returned figures, keyed as sicog's Scores.metrics key them."""
    if isinstance(result, dict):  # OCRBench: counts (nvidia-vlmeval 26.3: {sum, count} per entry)
        return {k: float(v["sum"] if isinstance(v, dict) else v) for k, v in result.items()}
    out: dict[str, float] = {}
    for row in result:
        if "Category" in row:                       # MM-Vet
            out[row["Category"]] = float(row["acc"])
        elif "Task&Skill" in row:                   # MathVista
            k = row["Task&Skill"]
            out[k], out[f"tot/{k}"], out[f"prefetch/{k}"] = float(row["acc"]), float(row["tot"]), float(row["prefetch"])
        elif name == "POPE":
            sp = row["split"]
            out.update({f"{sp}/F1": float(row["Overall"]), f"{sp}/acc": float(row["acc"]),
                        f"{sp}/precision": float(row["precision"]), f"{sp}/recall": float(row["recall"])})
        else:
            sp = row.get("split")
            for k, v in row.items():
                if k != "split":
                    out[k if sp in (None, "none") else f"{sp}/{k}"] = float(v)
    return out


def _sicog_items(name: str, scores) -> dict[str, dict]:
    if scores.kind.startswith("mcq"):
        return {i: {"hit": int(v)} for i, v in scores.items.items()}
    if scores.kind == "yes_no":
        return {d["index"]: {"extracted": d["extracted"], "score": bool(d["hit"])} for d in scores.details}
    if scores.kind == "judged/mmvet":
        return {d["index"]: {"score": float(d["score"])} for d in scores.details}
    if scores.kind == "judged/mathvista":
        return {d["index"]: {"res": d["res"], "log": d["log"]} for d in scores.details}
    return {}


def _same(a, b) -> bool:
    """Equal, numbers by value (an xlsx round trip turns 2.0 into 2)."""
    if str(a) == str(b):
        return True
    try:
        return abs(float(a) - float(b)) <= TOLERANCE
    except (TypeError, ValueError):
        return False


def scorer_agreement(args) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sicog.eval.scores.judge import Judge, JudgeSettings
    from sicog.eval.scores.registry import score_file
    from tests.eval._judge_server import JudgeServer
    from tests.eval._vlmeval_tables import BUILDERS, make_tables

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"--out {out} is not empty: use a new folder (VLMEvalKit reuses what it finds)")
    names = args.only or list(BUILDERS)
    reports = []
    if not os.environ.get("SICOG_JUDGE_PROMPTS"):  # the judge prompts, from VLMEvalKit's own builders
        out.mkdir(parents=True, exist_ok=True)
        prompts = out / "judge_prompts.json"
        repo = str(Path(__file__).resolve().parents[1])
        subprocess.run([args.vlmeval_python, "-m", "sicog.eval.scores.judge_prompts", str(prompts)], check=True,
                       env={**os.environ, "PYTHONPATH": repo}, cwd=repo, capture_output=True)
        os.environ["SICOG_JUDGE_PROMPTS"] = str(prompts)
    with JudgeServer() as server:
        env = {**os.environ, "OPENAI_API_KEY": "sk-stub", "OPENAI_API_BASE": f"{server.base_url}/chat/completions",
               "LMUData": str(out / "LMUData")}
        for name in names:
            work = out / name
            tsv, xlsx = make_tables(work, args.items, args.seed, [name])[name]
            judged = name in ("MMVet", "MathVista_MINI")
            judge_model = "gpt-4o-mini" if judged else "exact_matching"
            judge = Judge(JudgeSettings(base_url=server.base_url, model=judge_model, api_key_env="")) if judged else None
            started = time.time()
            ours = score_file(xlsx, name, judge=judge, progress=False)
            ours_s = time.time() - started
            vdir = work / "vlmevalkit"
            vdir.mkdir()
            vpred = vdir / xlsx.name
            shutil.copyfile(xlsx, vpred)
            started = time.time()
            proc = subprocess.run([args.vlmeval_python, str(Path(__file__).with_name("_vlmevalkit_score.py")), name,
                                   str(tsv), str(vpred), judge_model], env=env, capture_output=True, text=True)
            (work / "vlmevalkit.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
            theirs_s = time.time() - started
            marker = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RESULT@@")]
            if proc.returncode != 0 or not marker:
                reports.append({"benchmark": name, "kind": ours.kind, "error": f"VLMEvalKit failed (exit "
                                f"{proc.returncode}); see {work / 'vlmevalkit.log'}"})
                print(f"{name}: VLMEvalKit failed, see {work / 'vlmevalkit.log'}", flush=True)
                continue
            got = json.loads(marker[-1][len("@@RESULT@@"):])
            theirs = _vlmevalkit_metrics(name, got["result"])
            mine_m = {k: ours.metrics.get(k, ours.metrics.get(f"count/{k}")) for k in theirs}
            metric_rows = [{"metric": k, "vlmevalkit": v, "sicog": mine_m[k],
                            "same": mine_m[k] is not None and _same(v, mine_m[k])} for k, v in theirs.items()]
            mine = _sicog_items(name, ours)
            item_rows = []
            for index, fields in got["items"].items():
                m = mine.get(str(index))
                if m is None and not mine:
                    continue
                for field, value in fields.items():
                    if m is not None and field in m:
                        item_rows.append({"index": index, "field": field, "vlmevalkit": value, "sicog": m[field],
                                          "same": _same(value, m[field])})
            report = {"benchmark": name, "kind": ours.kind, "rows": len(got["items"]) or args.items,
                      "metrics_same": sum(r["same"] for r in metric_rows), "metrics": len(metric_rows),
                      "items_same": sum(r["same"] for r in item_rows), "items": len(item_rows),
                      "headline": {"name": ours.headline, "sicog": ours.value},
                      "max_abs_diff": max((abs(r["vlmevalkit"] - r["sicog"]) for r in metric_rows
                                           if r["sicog"] is not None), default=0.0),
                      "judge_requests": server.requests if judged else 0,
                      "seconds": {"sicog": round(ours_s, 2), "vlmevalkit": round(theirs_s, 1)},
                      "differences": [r for r in metric_rows + item_rows if not r["same"]][:50]}
            reports.append(report)
            print(f"{name} ({ours.kind}): figures {report['metrics_same']}/{report['metrics']} equal, items "
                  f"{report['items_same']}/{report['items']} equal; {ours.headline} = {ours.value:.4f}; "
                  f"max |diff| {report['max_abs_diff']:.2e}", flush=True)
    (out / "agreement_scorers.json").write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    ok = all("error" not in r and r["metrics_same"] == r["metrics"] and r["items_same"] == r["items"]
             for r in reports)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scorers", action="store_true", help="check sicog.eval.scores against VLMEvalKit's evaluate "
                   "(no model needed)")
    p.add_argument("--vlmeval-python", default=sys.executable,
                   help="--scorers: the python whose environment has VLMEvalKit (default: this one)")
    p.add_argument("--items", type=int, default=200, help="--scorers: items per made-up benchmark (default 200)")
    p.add_argument("--seed", type=int, default=0, help="--scorers: seed of the made-up tables")
    p.add_argument("--only", nargs="+", help="--scorers: these VLMEvalKit dataset names only")
    p.add_argument("--benchmark", help="a multiple-choice benchmark TSV (VLMEvalKit layout)")
    p.add_argument("--model", action="append", help="checkpoint folder (repeat for several)")
    p.add_argument("--prompt-style", choices=("direct", "cot"), default="direct", help="default direct")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: 32 direct, 512 cot (both tools)")
    p.add_argument("--batch-size", type=int, default=16, help="sicog evaluate's batch size (default 16)")
    p.add_argument("--out", required=True, help="a new folder for both tools' outputs and agreement.json")
    p.add_argument("--quiet", action="store_true", help="print the totals only, not every item")
    args = p.parse_args(argv)
    if args.scorers:
        return scorer_agreement(args)
    if not args.benchmark or not args.model:
        p.error("--benchmark and --model are needed (or --scorers)")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        sys.exit(f"--out {out} is not empty: use a new folder (VLMEvalKit reuses what it finds)")
    lmu = out / "LMUData"
    lmu.mkdir(parents=True)
    shutil.copyfile(args.benchmark, lmu / f"{DATASET}.tsv")
    reports = []
    for k, model in enumerate(args.model):
        name = f"m{k}_{Path(model).resolve().parent.name}_{Path(model).name}"
        r = agree_one(Path(model), name, args, lmu)
        reports.append(r)
        if not args.quiet:
            print("index  same_reply  vlmevalkit_hit  sicog_hit(vlmevalkit matching)  sicog_hit(own extraction)")
            for i in r["items"]:
                print(f"{i['index']:>5}  {i['same_reply']!s:>10}  {i['vlmevalkit_hit']!s:>14}  "
                      f"{i['sicog_hit_vlmevalkit_matching']:>30}  {i['sicog_hit_own_extraction']:>25}")
        print(f"{model} ({args.prompt_style}): identical replies {r['identical_replies']}/{r['n']}, identical hits "
              f"(VLMEvalKit matching) {r['identical_hits_vlmevalkit_matching']}/{r['n']}, (own extraction) "
              f"{r['identical_hits_own_extraction']}/{r['n']}; accuracy VLMEvalKit {r['vlmevalkit_accuracy']:.3f}, "
              f"sicog under its matching {r['sicog_accuracy_vlmevalkit_matching']:.3f}, sicog's own extraction "
              f"{r['sicog_accuracy_own_extraction']:.3f}; {r['sicog_seconds']} s / {r['vlmevalkit_seconds']} s",
              flush=True)
    (out / "agreement.json").write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
    agree = all(r["identical_replies"] == r["n"] == r["identical_hits_vlmevalkit_matching"] for r in reports)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
