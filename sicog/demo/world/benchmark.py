"""The world's held-out benchmark: a VLMEvalKit-style multiple-choice TSV and caption ground truth.

`benchmark.tsv` (tab-separated, header line, one row per question; what `sicog evaluate` and
VLMEvalKit's ImageMCQDataset read)::

    index  image  question  A  B  C  D  answer  category  l2-category  image_id

- `index`: 0..n-1; `image`: the PNG as base64 (no data: prefix); `question`: the question alone
  (the prompt is laid out by `sicog.data.formats.mcq_prompt`); `A`..`D`: the options, exactly
  one correct; `answer`: its letter; `category`: count | attribute | spatial | comparison |
  existence; `l2-category`: the subtype (`sicog.demo.world.questions`); `image_id`: the scene id
  (key of `scenes.jsonl` / `benchmark_captions.jsonl`). No `hint` column.
  Text fields never contain tabs or newlines.

`benchmark_captions.jsonl`: one line per benchmark image,
`{"id": "bench-000003", "image": "images/bench/bench-000003.png", "scene": {scene graph}}`
(scene graph: `sicog.demo.world.scenes`), for caption scoring (object recall, attribute accuracy,
hallucination rate).
"""

from __future__ import annotations

import base64
import csv
import os
import random

from sicog.demo.world import questions as Q
from sicog.demo.world.scenes import Scene, SceneConfig
from sicog.utils.io import atomic_write

BENCHMARK_COLUMNS = ("index", "image", "question", "A", "B", "C", "D", "answer", "category",
                     "l2-category", "image_id")


def benchmark_rows_for_scene(scene: Scene, png: bytes, rng: random.Random, k: int, first_kind: int,
                             cfg: SceneConfig) -> list[dict]:
    """Up to k multiple-choice rows for one scene (without `index`), kinds cycling from `first_kind`."""
    rows = []
    image_b64 = base64.b64encode(png).decode("ascii")
    for q in Q.make_questions(scene, rng, k, cfg, mcq=True, first_kind=first_kind):
        letters, answer = Q.mcq_layout(q, rng)
        rows.append({"image": image_b64, "question": q.text, **letters, "answer": answer,
                     "category": q.kind, "l2-category": q.subtype, "image_id": scene.id,
                     "_truth": q.answer})
    return rows


def write_benchmark_tsv(path: str | os.PathLike, rows: list[dict]) -> int:
    """Write rows as a VLMEvalKit-style TSV atomically (index assigned in order); returns the count."""
    with atomic_write(path) as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(BENCHMARK_COLUMNS)
        for i, row in enumerate(rows):
            values = {**row, "index": i}
            for col in BENCHMARK_COLUMNS:
                if "\t" in str(values[col]) or "\n" in str(values[col]):
                    raise ValueError(f"benchmark row {i}, column {col}: tab or newline in text")
            writer.writerow([values[c] for c in BENCHMARK_COLUMNS])
    return len(rows)
