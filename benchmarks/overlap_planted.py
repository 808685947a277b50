"""Recall and false positives of `sicog data overlap` on a planted set (tests/data/_overlap_planted.py):
exact copies and resized + JPEG re-encoded copies of benchmark images, verbatim and paraphrased
(wrapped, reordered, one synonym) benchmark questions, among clean distractors.

    python benchmarks/overlap_planted.py --root /tmp/planted [--bench 200 --clean 600 --seed 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sicog.data.overlap import OverlapConfig, run_overlap  # noqa: E402
from tests.data._overlap_planted import measure, plant  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True)
    p.add_argument("--bench", type=int, default=200)
    p.add_argument("--clean", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    root = Path(args.root)
    shutil.rmtree(root, ignore_errors=True)
    truth = plant(root / "in", n_bench=args.bench, n_clean=args.clean, seed=args.seed)
    started = time.time()
    run_overlap(OverlapConfig(data=[str(root / "in" / "train.jsonl")], benchmark=[str(root / "in" / "bench.tsv")],
                              out=str(root / "out"), image_folder=str(root / "in" / "images"), progress=False))
    result = {**measure(truth, root / "out" / "overlap.jsonl"), "seconds": round(time.time() - started, 1)}
    print(json.dumps(result, indent=1))
    ok = (result["resized"]["found"] >= 0.95 * result["resized"]["planted"] and result["false_positives_clean"] == 0
          and result["false_positives_wrong_item"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
