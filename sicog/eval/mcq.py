"""Multiple-choice evaluation on VLMEvalKit-style TSV benchmarks.

A benchmark TSV (MMBench, MMStar, AI2D, the synthetic world's `benchmark.tsv` …) has one row
per item with the columns `index`, `image` (base64), `question`, `answer` (a letter) and the
options `A`, `B`, … (`C`, `D`… may be absent or empty/NaN); `hint` and `category` are
optional; every other column (`l2-category`, `split`, `bench`…) is carried into the result
files untouched. As in MMBench, an `image` cell may hold the `index` of another row instead
of an image (rows sharing a picture).

The evaluator core takes any *predict* callable — a list of (prompt, image) pairs in, one reply
per pair out — so a checkpoint (`sicog.eval.predict.checkpoint_predictor`), an oracle or a
constant answerer plug into the same code. Replies are mapped to letters by
`sicog.eval.answers.extract_choice`; a reply naming no single option counts as unanswered
(wrong).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import logging
import string
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from PIL import Image
from tqdm import tqdm

from sicog.data.formats import mcq_prompt
from sicog.eval.answers import extract_choice
from sicog.eval.vlmevalkit_matching import vlmevalkit_choice
from sicog.utils.io import SicogError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("index", "image", "question", "answer", "A", "B")
PROMPT_STYLES = ("direct", "cot")  # the ones VLMEvalKit's prompt layout has (sicog vlmeval)
#: `sicog evaluate` also asks the open question step by step (`open_cot`, sicog.data.formats.mcq_prompt)
EVAL_PROMPT_STYLES = (*PROMPT_STYLES, "open_cot")
#: cells pandas writes/reads as missing; VLMEvalKit drops such options (`pd.isna`)
_MISSING = {"", "nan", "NaN", "NAN", "None", "none", "null", "NULL", "<NA>", "N/A", "n/a"}
#: an `image` cell this short is a reference to another row's index (MMBench), not base64
_IMAGE_REF_MAX_LEN = 64

#: one reply per (prompt, image) pair, in order
Predictor = Callable[[Sequence[tuple[str, "Image.Image | None"]]], list[str]]


@dataclass
class McqItem:
    """One benchmark row: the question, its options, the answer letter and the encoded image."""

    index: str
    line: int                     # line of the TSV where the row starts (1 = header)
    question: str
    options: dict[str, str]       # only the options that exist, in letter order
    answer: str
    hint: str | None = None
    category: str | None = None
    row: dict[str, str] = field(default_factory=dict)   # every original column except image
    image: bytes | None = field(default=None, repr=False)

    def prompt(self, style: str = "direct") -> str:
        """The user text for this item (VLMEvalKit layout, see `sicog.data.formats.mcq_prompt`)."""
        return mcq_prompt(self.question, self.options, self.hint, style)

    def load_image(self) -> Image.Image | None:
        """The decoded RGB image (None for a text-only row)."""
        if self.image is None:
            return None
        from sicog.data.images import open_image

        return open_image(self.image, f"benchmark row {self.index!r} (line {self.line})")


@dataclass
class McqPrediction:
    """A model's reply to one item and how it was scored."""

    item: McqItem
    prediction: str
    extracted: str | None

    @property
    def correct(self) -> bool:
        return self.extracted is not None and self.extracted == self.item.answer

    @property
    def vlmevalkit_choice(self) -> str:
        """The letter VLMEvalKit's exact matching reads from the reply ("Z": none)."""
        return vlmevalkit_choice(self.prediction, self.item.options)


def _is_missing(value) -> bool:
    """True for the cells VLMEvalKit treats as missing: None, float NaN, "", "nan"…"""
    if value is None or (isinstance(value, float) and value != value):
        return True
    return str(value).strip() in _MISSING


def cell_text(value) -> str:
    """A cell as the TSV wrote it: pandas reads a numeric column with an empty cell as floats,
    and "3" must not come back as "3.0"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def row_options(row) -> dict[str, str]:
    """The options of a benchmark row (a dict or a pandas row) that exist, in letter order."""
    return {c: cell_text(row[c]) for c in string.ascii_uppercase if c in row and not _is_missing(row[c])}


def row_prompt(row, style: str = "direct") -> str:
    """The prompt of a benchmark row (dict or pandas row) as `sicog evaluate` builds it; other
    tools (lmms-eval, VLMEvalKit wrappers) use this to ask exactly the same question."""
    hint = row["hint"] if "hint" in row and not _is_missing(row["hint"]) else None
    return mcq_prompt(cell_text(row["question"]), row_options(row), None if hint is None else cell_text(hint), style)


def _decode_image(cell: str) -> bytes:
    """base64 text → image bytes that Pillow can read; raises ValueError otherwise."""
    text = "".join(cell.split())
    if text.startswith("["):
        raise ValueError("multi-image cells (a list of images) are not supported")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not valid base64 ({e})") from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except Exception as e:  # Pillow raises many types for a corrupt file
        raise ValueError(f"base64 decodes to no readable image ({type(e).__name__}: {e})") from None
    return data


def _index_key(value: str) -> str:
    """Index cells compare as text; "3" and "3.0" (pandas float round-trips) are the same row."""
    value = value.strip()
    if value.endswith(".0") and value[:-2].lstrip("-").isdigit():
        return value[:-2]
    return value


def read_mcq_tsv(path: str | Path, limit: int | None = None) -> list[McqItem]:
    """Read and validate a VLMEvalKit-style multiple-choice TSV (see the module docstring).

    Every image is decoded once here, so a bad row fails before any model runs. Errors are
    `SicogError`s naming the file, the column and, for a bad cell, the row's index and line.
    """
    path = Path(path)
    if not path.is_file():
        raise SicogError(f"{path}: benchmark file not found")
    csv.field_size_limit(sys.maxsize)  # base64 images are far longer than csv's 128 KiB default
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line, col = raw.count(b"\n", 0, e.start) + 1, e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SicogError(f"{path}:{line}:{col}: not UTF-8 text ({e.reason} at byte {e.start}); a benchmark TSV "
                         "is UTF-8") from None
    del raw
    try:
        with io.StringIO(text, newline="") as fh:
            reader = csv.reader(fh, delimiter="\t")
            try:
                header = next(reader)
            except StopIteration:
                raise SicogError(f"{path}: empty file (expected a header row)") from None
            header = [h.strip() for h in header]
            # VLMEvalKit matches non-letter columns case-insensitively
            canonical = [h if h in string.ascii_uppercase else h.lower() for h in header]
            for k, col in enumerate(canonical):  # `answer` and `Answer`: dict(zip()) would keep the last
                if col in canonical[:k]:
                    raise SicogError(f"{path}:1: columns {header[canonical.index(col)]!r} and {header[k]!r} are the "
                                     f"same column ({col!r}, matched case-insensitively); keep one")
            for col in REQUIRED_COLUMNS:
                if col not in canonical:
                    raise SicogError(f"{path}: missing column {col!r} (columns: {', '.join(header)})")
            letters = [c for c in string.ascii_uppercase if c in canonical]
            raw_rows: list[tuple[int, dict[str, str]]] = []
            start = reader.line_num + 1
            for cells in reader:
                if not any(c.strip() for c in cells):
                    start = reader.line_num + 1
                    continue
                if len(cells) != len(canonical):
                    raise SicogError(
                        f"{path}: line {start}: {len(cells)} cells, the header has {len(canonical)}"
                    )
                raw_rows.append((start, dict(zip(canonical, cells))))
                start = reader.line_num + 1
    except csv.Error as e:  # e.g. a NUL byte, an unterminated quote
        raise SicogError(f"{path}:{reader.line_num}: malformed TSV ({e})") from None
    if not raw_rows:
        raise SicogError(f"{path}: no rows")

    images_by_index = {_index_key(r["index"]): r["image"] for _, r in raw_rows}
    items: list[McqItem] = []
    seen: dict[str, int] = {}
    for line, r in raw_rows:
        index = _index_key(r["index"])

        def where(column: str, _i=index, _l=line) -> str:
            return f"{path}: row index={_i} (line {_l}), column {column!r}"

        if not index:
            raise SicogError(f"{where('index')}: empty index")
        if index in seen:
            raise SicogError(f"{where('index')}: duplicate index (first on line {seen[index]})")
        seen[index] = line
        options = OrderedDict((c, r[c].strip()) for c in letters if not _is_missing(r[c]))
        if len(options) < 2:
            raise SicogError(f"{where('A')}: fewer than two non-empty options")
        answer = r["answer"].strip()
        if answer not in options:
            raise SicogError(
                f"{where('answer')}: {answer!r} is not one of the options {', '.join(options)}"
            )
        cell = r["image"].strip()
        if len(cell) <= _IMAGE_REF_MAX_LEN and _index_key(cell) in images_by_index \
                and _index_key(cell) != index:
            cell = images_by_index[_index_key(cell)].strip()
        if _is_missing(cell):
            raise SicogError(f"{where('image')}: empty image")
        try:
            image = _decode_image(cell)
        except ValueError as e:
            raise SicogError(f"{where('image')}: {e}") from None
        hint = None if "hint" not in r or _is_missing(r["hint"]) else r["hint"].strip()
        category = None if "category" not in r or _is_missing(r["category"]) else r["category"].strip()
        row = {k: v for k, v in r.items() if k != "image"}
        items.append(McqItem(index, line, r["question"].strip(), dict(options), answer,
                             hint, category, row, image))
        if limit is not None and len(items) >= limit:
            break
    return items


def chunks_with_progress(items: Sequence, chunk_size: int, desc: str, progress: bool = True, start: int = 0):
    """Consecutive chunks of `items[start:]` (`chunk_size` each, from --batch-size) under one
    progress bar over all of `items` (a resumed run starts it at `start`)."""
    if chunk_size < 1:
        raise SicogError(f"--batch-size must be >= 1, got {chunk_size}")
    bar = tqdm(total=len(items), initial=start, desc=desc, unit="item", disable=not progress)
    for begin in range(start, len(items), chunk_size):
        chunk = items[begin:begin + chunk_size]
        yield chunk
        bar.update(len(chunk))
    bar.close()


#: called with the predictions of each finished chunk (a resumable run stores them)
ChunkCallback = Callable[[list["McqPrediction"]], None]


def evaluate_mcq(items: Sequence[McqItem], predict: Predictor, *, prompt_style: str = "direct",
                 chunk_size: int = 32, progress: bool = True, done: Sequence[McqPrediction] = (),
                 on_chunk: ChunkCallback | None = None) -> list[McqPrediction]:
    """Ask `predict` every item (in chunks of `chunk_size`, images decoded per chunk) and score.

    `predict` must return exactly one reply per (prompt, image) pair. `done` holds the
    predictions of an earlier, interrupted run for the first items; only the rest are asked.
    """
    if prompt_style not in EVAL_PROMPT_STYLES:
        raise SicogError(f"--prompt-style must be one of {', '.join(EVAL_PROMPT_STYLES)}, got {prompt_style!r}")
    results: list[McqPrediction] = list(done)
    for chunk in chunks_with_progress(items, chunk_size, "mcq", progress, start=len(done)):
        replies = predict([(it.prompt(prompt_style), it.load_image()) for it in chunk])
        if len(replies) != len(chunk):
            raise RuntimeError(f"predictor returned {len(replies)} replies for {len(chunk)} prompts")
        new = []
        for it, reply in zip(chunk, replies):
            reply = "" if reply is None else str(reply)
            new.append(McqPrediction(it, reply, extract_choice(reply, it.options)))
        results += new
        if on_chunk is not None:
            on_chunk(new)
    return results


def with_shuffled_images(items: Sequence[McqItem], seed: int = 0) -> list[McqItem]:
    """The items with every image swapped for a different one (the image-blind control).

    Distinct images are put in a seeded random order and each is replaced by the next one, so no
    item keeps its own image, even when several questions share an image. Accuracy on these
    items is what a model gets from the question alone; the gap to the real accuracy is what it
    reads from the image.
    """
    import dataclasses
    import random

    distinct = list(OrderedDict.fromkeys(it.image for it in items if it.image is not None))
    if len(distinct) < 2:
        raise SicogError("the shuffled-image control needs at least two different images in the benchmark")
    order = distinct[:]
    random.Random(seed).shuffle(order)
    swap = {img: order[(k + 1) % len(order)] for k, img in enumerate(order)}
    return [dataclasses.replace(it, image=swap[it.image]) if it.image is not None else it for it in items]


def summarize_mcq(preds: Sequence[McqPrediction], vlmevalkit: bool = True) -> dict:
    """Overall and per-category accuracy, unanswered count, and the accuracy of random guessing;
    with `vlmevalkit` (generated replies), also the accuracy under VLMEvalKit's exact matching."""
    n = len(preds)
    correct = sum(p.correct for p in preds)
    per_cat: dict[str, list[int]] = {}
    per_sub: dict[str, list[float]] = {}  # the TSV's l2-category (MMBench's, the world's question subtype)
    for p in preds:
        if p.item.category is not None:
            c = per_cat.setdefault(p.item.category, [0, 0])
            c[0] += p.correct
            c[1] += 1
        if p.item.row.get("l2-category"):
            per_sub.setdefault(p.item.row["l2-category"], []).append(float(p.correct))
    from sicog.eval.stats import bootstrap_interval

    summary = {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        # 95 % percentile interval over resampled questions (sicog.eval.stats)
        "ci95": [round(v, 4) for v in bootstrap_interval([float(p.correct) for p in preds])] if n else None,
        "unanswered": sum(p.extracted is None for p in preds),
        "chance_accuracy": sum(1 / len(p.item.options) for p in preds) / n if n else 0.0,
        "per_category": {
            cat: {"n": t, "correct": c, "accuracy": c / t} for cat, (c, t) in sorted(per_cat.items())
        },
    }
    if per_sub:  # each subtype apart, with its own 95 % interval over its questions
        summary["per_subcategory"] = {
            sub: {"n": len(v), "correct": int(sum(v)), "accuracy": sum(v) / len(v),
                  "ci95": [round(x, 4) for x in bootstrap_interval(v)]} for sub, v in sorted(per_sub.items())}
    if vlmevalkit:  # the same replies as VLMEvalKit scores them: comparable with its published numbers
        choices = [p.vlmevalkit_choice for p in preds]
        hits = sum(c == p.item.answer for c, p in zip(choices, preds))
        summary["vlmevalkit_exact_matching"] = {"correct": hits, "accuracy": hits / n if n else 0.0,
                                                "unanswered": choices.count("Z")}
    return summary
