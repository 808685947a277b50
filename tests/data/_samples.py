"""Helpers of the data tests: deterministic images, JSONL files, LLaVA records."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image


def write_image(path, size=(80, 64), seed=0):
    """A deterministic noise PNG (not square, so resize + crop are exercised)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_jsonl(path, records):
    """Write records (dicts, or raw strings written verbatim as a line) as JSONL."""
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return str(path)


def image_record(i, image=None, question="Describe the image.", answer=None):
    return {"id": f"img-{i}", "image": image or f"{i}.png",
            "conversations": [{"from": "human", "value": f"<image>\n{question}"},
                              {"from": "gpt", "value": answer or f"Step 1: there are {i % 5} red circles."}]}


def text_record(i, question="What is two plus two?", answer=None):
    return {"id": f"txt-{i}",
            "conversations": [{"from": "human", "value": question},
                              {"from": "gpt", "value": answer or f"The answer is {i}."}]}
