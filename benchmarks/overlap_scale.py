"""`sicog data overlap` at scale: N training images (files + a JSONL of records) against M
benchmark images (a TSV of base64 PNGs), all synthetic and distinct: a random 6×6 colour grid
upsampled bicubically to 64 px (cheap to make, smooth like a photo at the phash's 32×32 scale); no
planted copies: tests/data/test_overlap.py measures recall, this measures time and memory.

    python benchmarks/overlap_scale.py --train 100000 --bench 10000 --root /tmp/overlap_scale [--make-only]
    /usr/bin/time -v sicog data overlap --data ROOT/train.jsonl --image-folder ROOT/images \\
        --benchmark ROOT/bench.tsv --out ROOT/out --no-progress

Making the files is not timed (it is the slow part here); the script prints the command to time.
Without --make-only it then runs the command under /usr/bin/time -v and prints its summary.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import subprocess
import sys
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from tests.data._overlap_planted import question  # noqa: E402

ROOT: Path = Path(".")


def random_image(rng: random.Random, size: int) -> Image.Image:
    grid = np.random.default_rng(rng.randrange(1 << 62)).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)


def _train(i: int) -> dict:
    rng = random.Random(f"train:{i}")
    name = f"{i // 1000:03d}/{i}.jpg"
    path = ROOT / "images" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    random_image(rng, 64).save(path, format="JPEG", quality=85)
    return {"id": f"t{i}", "image": name, "conversations": [{"from": "human", "value": f"<image>\n{question(rng)}"},
                                                            {"from": "gpt", "value": "An answer."}]}


def _bench(i: int) -> str:
    rng = random.Random(f"bench:{i}")
    buf = io.BytesIO()
    random_image(rng, 64).save(buf, format="PNG")
    return f"{i}\t{question(rng)}\tyes\tno\tA\t{base64.b64encode(buf.getvalue()).decode()}\n"


def _init(root: Path) -> None:
    global ROOT
    ROOT = root


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=100_000)
    p.add_argument("--bench", type=int, default=10_000)
    p.add_argument("--root", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--make-only", action="store_true")
    args = p.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "train.jsonl").exists():
        with Pool(args.workers, initializer=_init, initargs=(root,)) as pool:
            with open(root / "bench.tsv.tmp", "w", encoding="utf-8") as fh:
                fh.write("index\tquestion\tA\tB\tanswer\timage\n")
                for line in pool.imap(_bench, range(args.bench), chunksize=64):
                    fh.write(line)
            with open(root / "train.jsonl.tmp", "w", encoding="utf-8") as fh:
                for rec in pool.imap(_train, range(args.train), chunksize=64):
                    fh.write(json.dumps(rec) + "\n")
        (root / "bench.tsv.tmp").rename(root / "bench.tsv")
        (root / "train.jsonl.tmp").rename(root / "train.jsonl")
    cmd = [sys.executable, "-m", "sicog", "data", "overlap", "--data", str(root / "train.jsonl"), "--image-folder",
           str(root / "images"), "--benchmark", str(root / "bench.tsv"), "--out", str(root / "out"), "--overwrite"]
    print("$ /usr/bin/time -v " + " ".join(cmd), flush=True)
    if args.make_only:
        return 0
    return subprocess.run(["/usr/bin/time", "-v", *cmd]).returncode


if __name__ == "__main__":
    sys.exit(main())
