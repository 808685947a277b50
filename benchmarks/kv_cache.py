"""`sicog sample` with the growing KV cache vs transformers' stock DynamicCache, side by side.

Each side is the real command (`python -m sicog sample CONFIG --data DATA --out OUT`) in its own
process under OMP_NUM_THREADS=1; the stock side differs only in that generation builds its
caches as a stock `DynamicCache` (concatenating the whole cache at every decoding step). Sides
alternate, `--repeats` times, so that load from other processes on the machine hits both alike;
the ratios are of the fastest run of each side, for the whole command (wall) and for generation
alone (`this_run.seconds` of the command's summary). The candidates of both sides must be identical.

    python benchmarks/kv_cache.py --config s64.yaml --data items16.jsonl --out runs/kv_bench
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# The stock side: the same CLI, with generation's cache factory swapped for the stock cache.
STOCK_LAUNCHER = (
    "import sys\n"
    "from transformers import DynamicCache\n"
    "import sicog.model.generation as generation\n"
    "generation.growing_dynamic_cache = lambda config: DynamicCache(config=config)\n"
    "from sicog.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)
SIDES = {"growing": [sys.executable, "-m", "sicog"], "stock": [sys.executable, "-c", STOCK_LAUNCHER]}


def run_side(side: str, config: str, data: str, out: Path) -> tuple[float, float]:
    """(wall seconds, generation seconds) of one `sicog sample` run."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    cmd = SIDES[side] + ["sample", config, "--data", data, "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    return wall, float(summary["this_run"]["seconds"])


def candidates(path: Path) -> list:
    return [(r["id"], r["candidates"]) for r in map(json.loads, path.read_text().splitlines())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="a `sicog sample` config (model, mode, n, batch size, ...)")
    parser.add_argument("--data", required=True, help="the records to sample (16-64 make a useful run)")
    parser.add_argument("--out", required=True, help="a new folder for the candidates and results.json")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, alternating")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=False)
    wall: dict[str, list[float]] = {side: [] for side in SIDES}
    generation: dict[str, list[float]] = {side: [] for side in SIDES}
    for rep in range(args.repeats):
        for side in (SIDES if rep % 2 == 0 else reversed(list(SIDES))):
            seconds, generating = run_side(side, args.config, args.data, out / f"{side}{rep}.jsonl")
            wall[side].append(seconds)
            generation[side].append(generating)
            print(f"{side:8s} run {rep}: {seconds:7.1f} s wall, {generating:7.1f} s generating", flush=True)
    first = {side: candidates(out / f"{side}0.jsonl") for side in SIDES}
    identical = first["growing"] == first["stock"]
    result = {"wall_seconds": wall, "generation_seconds": generation,
              "wall_stock_over_growing": min(wall["stock"]) / min(wall["growing"]),
              "generation_stock_over_growing": min(generation["stock"]) / min(generation["growing"]),
              "identical_candidates": identical, "records": len(first["growing"])}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
