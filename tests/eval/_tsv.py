"""Helpers for evaluation tests: tiny images and VLMEvalKit-style TSV files."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

from PIL import Image

MMSTAR_COLUMNS = ["index", "question", "answer", "category", "l2-category", "bench",
                  "A", "B", "C", "D", "image"]


def png_base64(colour=(200, 30, 30), size: int = 16) -> str:
    """A small solid-colour PNG as base64 text."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_tsv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """Write rows as a tab-separated file (missing keys → empty cells), as pandas would."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
    return path


def mmstar_rows(n: int = 5) -> list[dict]:
    """n MMStar-like rows: colour questions whose answer letters cycle A, B, C, D."""
    colours = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220), "yellow": (230, 200, 30)}
    names = list(colours)
    rows = []
    for i in range(n):
        # options in an order rotated per row; the truth sits at letter i % 4
        order = names[i % 3:] + names[:i % 3]
        truth = order[i % 4]
        rows.append({
            "index": i, "question": f"What colour is image {i}?", "answer": "ABCD"[i % 4],
            "category": "coarse perception" if i % 2 == 0 else "fine-grained perception",
            "l2-category": "colour", "bench": "synthetic",
            "A": order[0], "B": order[1], "C": order[2], "D": order[3],
            "image": png_base64(colours[truth]),
        })
    return rows
