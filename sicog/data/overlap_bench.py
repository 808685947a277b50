"""The benchmark side of `sicog data overlap`: benchmark TSVs (or world folders) read row by row,
their images fingerprinted in the worker pool, their questions indexed (sicog.data.overlap_match).

Within one benchmark, rows with the same question and image (MMBench's rotated copies) are one
item, kept under the first index. An `image` cell of at most 64 characters names the row whose
image it reuses (VLMEvalKit's rule).
"""

from __future__ import annotations

import base64
import binascii
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from sicog.data.overlap_match import QuestionIndex, fingerprint_bytes
from sicog.utils.io import SicogError

IMAGE_REF_MAX_LEN = 64


@dataclass
class BenchItem:
    benchmark: str
    index: str
    digest: str | None
    phash: int | None
    thumb: bytes | None = None


def resolve_benchmark(spec: str) -> tuple[str, Path, Path]:
    """(name, TSV, the input path to keep --out apart from) of a --benchmark value."""
    from sicog.data.bundle import bundle_file, read_manifest

    folder = Path(spec[len("world:"):]) if spec.startswith("world:") else Path(spec) if Path(spec).is_dir() else None
    if folder is None:
        if not Path(spec).is_file():
            raise SicogError(f"--benchmark {spec}: file not found")
        return Path(spec).stem, Path(spec), Path(spec)
    try:
        tsv = bundle_file(folder, "benchmark", read_manifest(folder))
    except SicogError as e:
        raise SicogError(f"--benchmark {spec}: {e}") from None
    return f"world-{folder.resolve().name}", tsv, folder


def _read_rows(tsv: Path):
    """(line, row dict with lower-cased headers) of a benchmark TSV, streamed."""
    csv.field_size_limit(sys.maxsize)
    with open(tsv, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = [h.strip().lower() for h in next(reader, [])]
        for column in ("index", "image"):
            if column not in header:
                raise SicogError(f"{tsv}:1: missing column {column!r} (columns: {', '.join(header)})")
        for row in reader:
            if not any(row):
                continue
            if len(row) != len(header):
                raise SicogError(f"{tsv}:{reader.line_num}: {len(row)} cells, the header has {len(header)}")
            yield reader.line_num, dict(zip(header, row))


def _hash_b64(cell: str):
    try:
        return fingerprint_bytes(base64.b64decode(cell, validate=False))
    except (binascii.Error, OSError, ValueError):
        return None


def load_benchmarks(specs: list[str], pool, questions: QuestionIndex, unreadable: list,
                    progress: bool = True) -> list[BenchItem]:
    from tqdm.auto import tqdm

    items: list[BenchItem] = []
    for spec in specs:
        name, tsv, _ = resolve_benchmark(spec)
        rows = list(_read_rows(tsv))
        own = [(line, r) for line, r in rows if len(r["image"].strip()) > IMAGE_REF_MAX_LEN]
        prints = {}
        bar = tqdm(total=len(own), desc=f"hash {name}", unit="img", disable=not progress, dynamic_ncols=True)
        cells = [r["image"] for _, r in own]
        for (line, r), fp in zip(own, pool.imap(_hash_b64, cells, chunksize=16)):
            prints[r["index"]] = fp
            if fp is None:
                unreadable.append(f"{tsv}:{line}:image: not a decodable base64 image (index {r['index']})")
            bar.update()
        bar.close()
        seen = set()
        for line, r in rows:
            cell = r["image"].strip()
            ref = cell if 0 < len(cell) <= IMAGE_REF_MAX_LEN else r["index"]
            if ref not in prints and cell:
                raise SicogError(f"{tsv}:{line}:image: names row {cell!r}, which has no image")
            fp = prints.get(ref)
            key = (r.get("question", ""), fp[0] if fp else None)
            if key in seen:
                continue  # a rotated copy (MMBench): the same item
            seen.add(key)
            items.append(BenchItem(name, r["index"], fp[0] if fp else None, fp[1] if fp else None,
                                   fp[2] if fp else None))
            pos = questions.add(r.get("question", "") if r.get("question") else "")
            assert pos == len(items) - 1
    return items
