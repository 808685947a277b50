"""Sizes of the data the steps of a plan read, for `sicog run --estimate` (docs/estimate.md).

A size is a set of sample rows standing for `records` records (each row weighs records / rows):
per row, its text tokens (chat framing included), its reply tokens, its images and, where the
images could be read, their sizes (the slicing plan of `arch: uhd` needs them). Three sources:

- **measured**: a file present now, read record by record (4 characters a token, the rule
  `sicog annotate` estimates with; ChatML framing of the system turn and every turn added);
- **stated**: a data key's file absent now, sized by the YAML's `estimate.data.<key>`;
- **derived**: a file a step writes (candidates, curated records, a head or a selection), from
  its input's size and `estimate.generated_tokens` / `estimate.curation_keep`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from sicog.data.formats import COT_STEP_HEADERS, CodFormatError, extract_cod_description, read_cod
from sicog.data.records import iter_json_objects
from sicog.utils.io import SicogError

CHARS_PER_TOKEN = 4  # the usual figure for English BPE vocabularies (sicog annotate's estimate too)
SYSTEM_TOKENS = 11  # "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" under Qwen2's vocabulary
TURN_TOKENS = 5  # "<|im_start|>{role}\n" … "<|im_end|>\n" around every turn
IMAGE_PLACEHOLDER = "<image>"


def text_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass
class DataSize:
    """`records` records, described by sample rows (see the module docstring)."""

    records: float
    text: np.ndarray  # per row: text tokens, chat framing included
    reply: np.ndarray  # per row: assistant tokens
    images: np.ndarray  # per row: images
    sizes: list | None = None  # per row: [(width, height) or None per image]; None: not read
    source: str = "measured"

    @classmethod
    def empty(cls, source: str) -> DataSize:
        return cls(0.0, np.zeros(1), np.zeros(1), np.zeros(1), None, source)

    @classmethod
    def stated(cls, items: int, text: float, reply: float, images: float, source: str) -> DataSize:
        return cls(float(items), np.array([text], float), np.array([reply], float), np.array([images], float),
                   None, source)

    def scaled(self, records: float, source: str) -> DataSize:
        return replace(self, records=float(records), source=source)

    def mean(self, values: np.ndarray) -> float:
        return float(values.mean()) if len(values) else 0.0

    @property
    def total_images(self) -> float:
        return self.records * self.mean(self.images)


def _turn_texts(rec: dict) -> list[tuple[str, str]]:
    convs = rec.get("conversations")
    if isinstance(convs, list):
        return [(str(t.get("from", "")), str(t.get("value", ""))) for t in convs if isinstance(t, dict)]
    return []


def _images_of(rec: dict) -> list[str]:
    image = rec.get("image")
    if isinstance(image, str) and image:
        return [image]
    return [i for i in image if isinstance(i, str)] if isinstance(image, list) else []


def _image_size(folder: str | None, name: str):
    from PIL import Image

    path = Path(folder or ".", name)
    try:
        with Image.open(path) as im:  # the header only
            return im.size
    except (OSError, ValueError):
        return None


def measure_file(path: str, image_folder: str | None = None, read_sizes: bool = False) -> DataSize:
    """Measure a LLaVA-layout JSON / JSONL file (records with `conversations`, optional `image`)."""
    text, reply, images, sizes = [], [], [], []
    for _, rec in iter_json_objects(path):
        if not isinstance(rec, dict):
            continue
        turns = _turn_texts(rec)
        body = sum(text_tokens(v.replace(IMAGE_PLACEHOLDER, "").strip()) for _, v in turns)
        text.append(SYSTEM_TOKENS + TURN_TOKENS * max(len(turns), 1) + body)
        reply.append(sum(text_tokens(v) for role, v in turns if role in ("gpt", "assistant")))
        names = _images_of(rec)
        images.append(len(names))
        if read_sizes:
            sizes.append([_image_size(image_folder, n) for n in names])
    if not text:
        return DataSize.empty(f"measured: {path} (no records)")
    return DataSize(float(len(text)), np.array(text, float), np.array(reply, float), np.array(images, float),
                    sizes if read_sizes else None, f"measured: {path}")


@dataclass
class FormatReplies:
    """Records of a warm-up file whose reply is in the task's step format."""

    items: int
    reply_tokens: float  # mean tokens of those replies
    described_tokens: float  # CoD: mean tokens of the Step-5 description (the source caption's stand-in)
    question_tokens: float  # mean tokens of their question
    images: list  # (width, height) or None, per CoD item with an image


def format_replies(path: str, task: str, image_folder: str | None = None, read_sizes: bool = False) -> FormatReplies:
    """The CoD (`task` captions) or structured-CoT (reasoning) replies of an annotation file."""
    n, reply, described, question, sizes = 0, 0.0, 0.0, 0.0, []
    for _, rec in iter_json_objects(path):
        turns = _turn_texts(rec) if isinstance(rec, dict) else []
        answers = [v for role, v in turns if role in ("gpt", "assistant")]
        if not answers:
            continue
        if task == "captions":
            try:
                read_cod(answers[0])
            except CodFormatError:
                continue
            described += text_tokens(extract_cod_description(answers[0]) or "")
            if read_sizes:
                sizes += [_image_size(image_folder, name) for name in _images_of(rec)[:1]]
        elif COT_STEP_HEADERS[0] not in answers[0]:
            continue
        n += 1
        reply += text_tokens(answers[0])
        question += sum(text_tokens(v.replace(IMAGE_PLACEHOLDER, "").strip()) for role, v in turns
                        if role in ("human", "user"))
    k = max(n, 1)
    return FormatReplies(n, reply / k, described / k, question / k, sizes)


# ------------------------------------------------------------------------------------ derived sizes
def candidates(items: DataSize, generated: float, source: str) -> DataSize:
    """The candidates file of a sampling step: one row per item, `generated` new tokens per candidate
    (the prompt is the item's own text)."""
    return replace(items, reply=np.full(len(items.text), float(generated)), source=source)


def chosen(cands: DataSize, share: float, source: str) -> DataSize:
    """Training records made of one candidate per item for a `share` of the items (curated,
    uncurated): the item's prompt plus the chosen reply."""
    return replace(cands, records=cands.records * share, text=cands.text + cands.reply, source=source)


def require(size: DataSize | None, path: str, key: str | None, step: str) -> DataSize:
    """A size, or an error saying how to state it."""
    if size is not None:
        return size
    hint = (f"state it as estimate.data.{key} (items, text_tokens, reply_tokens, images)" if key
            else "it is written by a step the estimator does not model")
    raise SicogError(f"estimate: step {step}: {path} does not exist; {hint}")
