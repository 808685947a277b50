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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", required=True, help="a multiple-choice benchmark TSV (VLMEvalKit layout)")
    p.add_argument("--model", action="append", required=True, help="checkpoint folder (repeat for several)")
    p.add_argument("--prompt-style", choices=("direct", "cot"), default="direct", help="default direct")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: 32 direct, 512 cot (both tools)")
    p.add_argument("--batch-size", type=int, default=16, help="sicog evaluate's batch size (default 16)")
    p.add_argument("--out", required=True, help="a new folder for both tools' outputs and agreement.json")
    p.add_argument("--quiet", action="store_true", help="print the totals only, not every item")
    args = p.parse_args(argv)
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
