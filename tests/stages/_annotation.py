"""Shared helpers of the annotation tests: caption records with images, and the CLI flags."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


def write_caption_records(root: Path, n: int, missing: tuple[int, ...] = ()) -> tuple[Path, Path]:
    """n LLaVA-layout caption records `item-K` (caption "caption of item-K") with 8x8 PNGs in
    root/in/images; the images of `missing` indices are not written. Returns (data file, image folder)."""
    root = root / "in"
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(n):
        if k not in missing:
            Image.new("RGB", (8, 8), (10 * k % 255, 40, 90)).save(images / f"{k}.png")
        lines.append(json.dumps({"id": f"item-{k}", "image": f"images/{k}.png", "conversations": [
            {"from": "human", "value": "<image>\nDescribe this picture."},
            {"from": "gpt", "value": f"caption of item-{k}"}]}))
    data = root / "captions.jsonl"
    data.write_text("\n".join(lines) + "\n")
    return data, root


def annotate_argv(data: Path, folder: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    """`sicog annotate cod` with fast retries, for a loopback server."""
    return ["annotate", "cod", "--data", str(data), "--image-folder", str(folder), "--out", str(out),
            "--base-url", base_url, "--model", "test-vlm", "--max-retries", "3", "--backoff-initial", "0.01",
            "--backoff-max", "0.05", "--request-timeout", "0.5", "--no-progress", *extra]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
