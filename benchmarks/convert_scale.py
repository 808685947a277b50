"""Real-size conversion: records/s and peak memory of `sicog convert` and `sicog data check` on a
~1 GB LLaVA-665K-shaped JSON list and on ~1 GB of LLaVA-ReCap-shaped parquet shards.

The JSON file is written here, synthetic but shaped like llava_v1_5_mix665k.json: one JSON list
on a few lines, ids repeated (three records per COCO image stem, as conversation / detail /
reasoning records share their image), a share of text-only records (ShareGPT), multi-turn
conversations, non-ASCII text, `<image>` before or after the question. The parquet shards are
shaped like LLaVA-ReCap-558K's (id, image {bytes, path}, conversations; row groups of 100 rows),
each image a distinct small JPEG. Each command runs in its own process, timed by the wall clock;
its peak resident memory is GNU time's figure for that process (`/usr/bin/time -f %M`). The
acceptance bound is 600 MB.

    python benchmarks/convert_scale.py --work /tmp/scale              # ~1 GB each, then deleted
    python benchmarks/convert_scale.py --work /tmp/scale --gb 0.1     # a quick look
    python benchmarks/convert_scale.py --work /tmp/scale --sicog-root OTHER_CHECKOUT   # compare

Measured once (2 shared CPU cores, loaded by other jobs; 1.00 GB JSON list of 884,428 records,
0.84 GB of parquet in 8 shards, 84,464 rows):

    convert llava-sft, JSON list      330 s   2,678 rec/s   peak 140 MB  (all 884,428 written)
    data check, the same file          581 s   1,523 rec/s   peak 225 MB
    convert llava-pretrain, parquet     76 s   1,109 rec/s   peak 239 MB  (every image extracted)
    data check, its output             147 s     573 rec/s   peak  71 MB  (every image decoded)
    before (whole file in memory):  convert 260 s, peak 8,728 MB, 515,916 records dropped as
                                    duplicate-id; data check 451 s, peak 8,728 MB
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOUND_MB = 600
TIME = "/usr/bin/time"  # GNU time (apt-get install time)
_WORDS = ("the", "a", "red", "bus", "street", "people", "sign", "window", "tree", "dog", "café", "naïve",
          "größer", "东京", "タワー", "🚌", "is", "on", "near", "with", "under", "two", "three", "large")


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def _record(rng: random.Random, i: int) -> dict:
    stem = f"{i // 3:012d}"  # three records per image: the id repeats
    if i % 12 == 11:  # text-only (ShareGPT's share of the mix)
        turns = []
        for _ in range(rng.randint(1, 4)):
            turns += [{"from": "human", "value": _sentence(rng, rng.randint(8, 40))},
                      {"from": "gpt", "value": _sentence(rng, rng.randint(40, 160))}]
        return {"id": f"sharegpt-{i // 12}", "model": "", "conversations": turns}
    turns = []
    for k in range(rng.randint(1, 5)):
        q = _sentence(rng, rng.randint(5, 20))
        if k == 0:
            q = f"<image>\n{q}" if rng.random() < 0.5 else f"{q}\n<image>"
        turns += [{"from": "human", "value": q}, {"from": "gpt", "value": _sentence(rng, rng.randint(10, 60))}]
    return {"id": stem, "image": f"coco/train2017/{stem}.jpg", "conversations": turns}


def write_665k_shaped(path: Path, target_bytes: int) -> int:
    """A JSON list of ~target_bytes; returns its record count."""
    rng = random.Random(0)
    n = size = 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("[")
        while size < target_bytes:
            text = ("" if n == 0 else ", ") + json.dumps(_record(rng, n), ensure_ascii=False)
            fh.write(text)
            size += len(text.encode("utf-8"))
            n += 1
        fh.write("]\n")
    return n


def write_recap_shaped(folder: Path, target_bytes: int, shards: int = 8) -> int:
    """Parquet shards of ~target_bytes in all, an embedded JPEG per row; returns the row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    per_shard = target_bytes // shards
    n = 0
    for s in range(shards):
        rows, size = [], 0
        while size < per_shard:
            pixels = base.copy()
            pixels[n % 96, :, :] = rng.integers(0, 256, (96, 3), dtype=np.uint8)  # distinct bytes per image
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
            data = buf.getvalue()
            rows.append({"id": f"{n // 1000:05d}/{n:09d}", "image": {"bytes": data, "path": f"{n:09d}.jpg"},
                         "conversations": [{"from": "human", "value": "<image>\nDescribe the image in detail."},
                                           {"from": "gpt", "value": "A noisy square. " * 20}]})
            size += len(data) + 400
            n += 1
        pq.write_table(pa.Table.from_pylist(rows), folder / f"train-{s:05d}-of-{shards:05d}.parquet",
                       row_group_size=100)
    return n


def measure(argv: list[str], sicog_root: Path) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit status) of `python -m sicog ARGV` in its own process.

    The peak is read by /usr/bin/time (`%M`), a small process between this one and the command:
    the kernel's peak of a process forked straight from this one would count this process's own
    memory (the parquet writer's) from before the command's exec."""
    env = {**os.environ, "PYTHONPATH": str(sicog_root), "TQDM_DISABLE": "1"}
    rss_file = Path(tempfile.mkstemp(prefix="convert_scale.", suffix=".rss")[1])
    started = time.perf_counter()
    proc = subprocess.run([TIME, "-f", "%M", "-o", str(rss_file), sys.executable, "-m", "sicog", *argv], env=env,
                          cwd=sicog_root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    peak_kb = int(rss_file.read_text().split()[-1])
    rss_file.unlink()
    if proc.returncode not in (0, 1):  # data check exits 1 when it finds problems (the images are synthetic)
        raise SystemExit(f"sicog {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}")
    return seconds, peak_kb / 1024, proc.returncode


def report(label: str, records: int, seconds: float, peak_mb: float) -> dict:
    line = {"run": label, "records": records, "seconds": round(seconds, 1),
            "records_per_s": round(records / seconds), "peak_rss_mb": round(peak_mb),
            "within_bound": peak_mb <= BOUND_MB}
    print(json.dumps(line), flush=True)
    return line


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True, help="scratch folder (emptied at the end unless --keep)")
    p.add_argument("--gb", type=float, default=1.0, help="size of each input, in GB (default 1)")
    p.add_argument("--sicog-root", default=str(REPO), help="the checkout whose sicog runs (compare two)")
    p.add_argument("--skip-parquet", action="store_true", help="the JSON runs only")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    args = p.parse_args()
    work, root = Path(args.work), Path(args.sicog_root).resolve()
    work.mkdir(parents=True, exist_ok=True)
    target = int(args.gb * 1e9)
    results = []
    try:
        src = work / "llava_v1_5_mix665k_synthetic.json"
        if not src.exists():
            t = time.perf_counter()
            n = write_665k_shaped(src, target)
            print(f"wrote {src} ({src.stat().st_size / 1e9:.2f} GB, {n} records) in {time.perf_counter() - t:.0f} s",
                  flush=True)
        out = work / "out" / "sft.jsonl"
        shutil.rmtree(work / "out", ignore_errors=True)
        seconds, peak, _ = measure(["convert", "llava-sft", "--data", str(src), "--out", str(out), "--no-progress"],
                                   root)
        summary = json.loads(out.with_name(out.name + ".summary.json").read_text())
        n = summary["read"]
        if sum(summary["written"].values()) != n:
            print(f"note: {n - sum(summary['written'].values())} record(s) not written: {summary['skipped']}")
        results.append(report("convert llava-sft (1 GB 665K-shaped JSON list)", n, seconds, peak))
        seconds, peak, _ = measure(["data", "check", str(src), "--no-progress"], root)
        results.append(report("data check (the same JSON list; images absent, not read)", n, seconds, peak))
        if not args.skip_parquet:
            shards = work / "recap" / "data"
            if not shards.exists():
                t = time.perf_counter()
                rows = write_recap_shaped(shards, target)
                size = sum(f.stat().st_size for f in shards.iterdir())
                print(f"wrote {shards} ({size / 1e9:.2f} GB, {rows} rows) in {time.perf_counter() - t:.0f} s",
                      flush=True)
            images, recap_out = work / "images", work / "out" / "recap.jsonl"
            shutil.rmtree(images, ignore_errors=True)  # every image written, as on a first run
            seconds, peak, _ = measure(["convert", "llava-pretrain", "--data", str(shards), "--out", str(recap_out),
                                        "--extract-images-to", str(images), "--no-progress"], root)
            rows = json.loads(recap_out.with_name(recap_out.name + ".summary.json").read_text())["read"]
            results.append(report(f"convert llava-pretrain ({rows} ReCap-shaped parquet rows, images extracted)", rows,
                                  seconds, peak))
            seconds, peak, _ = measure(["data", "check", str(recap_out), "--image-folder", str(images),
                                        "--no-progress"], root)
            results.append(report("data check (the converted ReCap records, every image decoded)", rows,
                                  seconds, peak))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["within_bound"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
