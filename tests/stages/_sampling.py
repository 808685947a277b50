"""Shared helpers of the `sicog sample` tests: small datasets, subprocess runs (the tiny
checkpoint is the `tiny_ckpt` fixture of tests/conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

QUESTION = "<image>\nWhat colour is the circle? Answer the question using a single word or phrase."


def write_records(root: Path, n: int, sizes: list[tuple[int, int]] | None = None,
                  answers: bool = False, name: str = "data.jsonl") -> Path:
    """n image records (noise images of the given (w, h) sizes, cycling) with a question each, in
    root/inputs/ (data file + img/): the image folder is `data.parent`, and outputs go beside it
    (an output inside an input folder is refused)."""
    root = root / "inputs"
    (root / "img").mkdir(parents=True, exist_ok=True)
    sizes = sizes or [(40, 30)]
    lines = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        arr = np.random.default_rng(i).integers(0, 256, (h, w, 3)).astype(np.uint8)
        Image.fromarray(arr).save(root / "img" / f"{i}.png")
        conv = [{"from": "human", "value": QUESTION}]
        if answers:
            conv.append({"from": "gpt", "value": f"answer {i}"})
        lines.append(json.dumps({"id": f"r{i}", "image": f"img/{i}.png", "conversations": conv}))
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def sample_cmd(ckpt: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """Arguments of `sicog sample` after the launcher."""
    return ["sample", "--model", str(ckpt), "--data", str(data), "--image-folder", str(data.parent),
            "--out", str(out), "--no-progress", *extra]


def subprocess_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    env.update(extra)
    return env


def run_sicog(args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """`python -m sicog ARGS` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "sicog", *args], capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(**env), cwd=REPO)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; on a loaded 2-core machine, two threads spin-wait
    and make generation ~20x slower. Restored afterwards for other test modules."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
