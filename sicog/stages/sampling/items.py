"""What `sicog sample` generates for: input records -> sample items -> candidate records.

One input record gives one item per requested corruption (or one clean item). Item ids:

- clean item (no corruption, or the pseudo-corruption `none`): the record's id;
- corrupted item: `<record id>#<corruption>` (e.g. `img-7#mask`), so every output line has a
  unique id while `meta.source_id` (and the part before `#`) names the input record.

Prompt per mode (docs/method.md, "Step 2 — sample"): cod -> COD_PROMPT, caption -> CAPTION_PROMPT, cot -> the
record's question asking for a step-by-step answer, direct -> the record's question as a short
answer request, conv -> the record's own first human turn, verbatim. Prompts are stored without
the `<image>` placeholder (`formats.with_image_token` adds it back for training records).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from sicog.data import formats
from sicog.data.corruptions import apply_corruption, canonical_name, corruption_seed
from sicog.data.images import image_header, open_image, resolve_image
from sicog.data.records import (
    DataError,
    Located,
    first_user_text,
    read_records,
    record_id,
)
from sicog.utils.io import SicogError

MODES = ("cod", "caption", "cot", "direct", "conv")
IMAGE_MODES = ("cod", "caption")  # these prompts describe an image: a record without one is an error
CLEAN = "none"


class ImageLoadError(SicogError):
    """An item's image is missing or unreadable; the message names the record (id and file:line)."""


@dataclass
class SampleItem:
    """One prompt to sample N candidates for."""

    id: str
    key: int  # global position (record index x corruptions + corruption index): seeds, order
    record_index: int
    source_id: str
    where: str  # file:line of the input record
    prompt: str
    mode: str
    image: str | None
    corruption: str | None
    reference: str | None = None  # the record's own answer, if it had one

    @property
    def has_image(self) -> bool:
        return self.image is not None


def parse_corruptions(spec: str | None) -> list[str | None]:
    """`--corruption a,b` -> canonical names; `none` (or no flag) stands for the clean image."""
    if not spec:
        return [None]
    out: list[str | None] = []
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        if name.lower() in (CLEAN, "clean", "original"):
            value = None
        else:
            try:
                value = canonical_name(name)
            except ValueError as e:
                raise SicogError(f"--corruption: {e}") from None
        if value in out:
            raise SicogError(f"--corruption: {name!r} is listed twice")
        out.append(value)
    return out or [None]


def prompt_for(mode: str, rec: dict, where: str) -> str:
    """The user text for `mode` (see module docstring)."""
    if mode == "cod":
        return formats.COD_PROMPT
    if mode == "caption":
        return formats.CAPTION_PROMPT
    question = formats.strip_image_token(first_user_text(rec))
    if not question:
        raise DataError(f"{where}: key 'conversations[0].value': mode {mode!r} needs a question, "
                        "the human turn is empty")
    if mode == "cot":
        return formats.to_cot_question(question)
    if mode == "direct":
        return formats.to_direct_question(question)
    if mode == "conv":
        return question
    raise SicogError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")


def check_placeholders(rec: dict, where: str) -> None:
    """A record has one image at most: one `<image>` placeholder at most (it is stripped from the
    prompt, and the image goes first). DataError naming file:line and the key of the second one."""
    seen = 0
    for i, turn in enumerate(rec["conversations"]):
        seen += turn["value"].count(formats.IMAGE_TOKEN)
        if seen > 1:
            raise DataError(f"{where}: key 'conversations[{i}].value': a second {formats.IMAGE_TOKEN} placeholder; "
                            "a record has one image, so it holds one placeholder at most")


def _reference(rec: dict) -> str | None:
    turns = rec["conversations"]
    return turns[1]["value"] if len(turns) > 1 and turns[1].get("from") in ("gpt", "assistant") else None


def build_items(records: list[Located], mode: str, corruptions: list[str | None]) -> list[SampleItem]:
    """All items of all records, in input order; duplicate ids and mode/image mismatches are
    DataErrors naming file:line."""
    if mode not in MODES:
        raise SicogError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    items: list[SampleItem] = []
    seen: dict[str, str] = {}
    for ri, loc in enumerate(records):
        rec = loc.record
        rid = record_id(rec, loc.line)
        if "#" in rid and rid.rsplit("#", 1)[1] in corruptions:
            # `<id>#<k>` (a repeated id made unique by `sicog convert`) is fine; `<id>#<corruption>`
            # would be taken for a corrupted copy of `<id>`
            raise DataError(f"{loc.where}: key 'id': {rid!r} ends with '#{rid.rsplit('#', 1)[1]}', which marks "
                            "a corrupted copy in the output; rename the record")
        if rid in seen:
            raise DataError(f"{loc.where}: key 'id': duplicate id {rid!r} (first at {seen[rid]})")
        seen[rid] = loc.where
        image = rec.get("image") or None
        if mode in IMAGE_MODES and image is None:
            raise DataError(f"{loc.where}: key 'image': mode {mode!r} needs an image, the record has none")
        if image is None and any(c is not None for c in corruptions):
            raise DataError(f"{loc.where}: key 'image': --corruption needs an image, the record has none")
        check_placeholders(rec, loc.where)
        prompt = prompt_for(mode, rec, loc.where)
        for ci, corruption in enumerate(corruptions):
            items.append(SampleItem(
                id=rid if corruption is None else f"{rid}#{corruption}",
                key=ri * len(corruptions) + ci, record_index=ri, source_id=rid, where=loc.where,
                prompt=prompt, mode=mode, image=image, corruption=corruption,
                reference=_reference(rec),
            ))
    return items


def load_items(data: str | os.PathLike, mode: str, corruptions: list[str | None]) -> list[SampleItem]:
    """Read and validate the whole data file (answers optional), then build its items."""
    records = read_records(data, require_answer=False)
    if not records:
        raise DataError(f"{data}: no records")
    return build_items(records, mode, corruptions)


def image_path(item: SampleItem, image_folder: str | os.PathLike | None, allow_outside: bool = False) -> Path:
    """Where the item's image lives; ImageLoadError naming the record when the path leaves the
    image folder without `allow_outside` (sicog.data.images.resolve_image)."""
    try:
        return resolve_image(image_folder, item.image, f"{item.where}: record {item.source_id!r}", allow_outside)
    except DataError as e:
        raise ImageLoadError(str(e)) from None


def check_image_exists(item: SampleItem, image_folder: str | os.PathLike | None, allow_outside: bool = False,
                       max_pixels: int | None = None) -> None:
    """Raise ImageLoadError naming the record when its image lies outside the folder, is no regular
    file (missing, a FIFO, a loop ...) or, from its header, is above `max_pixels` (the checkpoint's
    cap, `slices.max_pixels_in_folder`) or PIL's decompression-bomb limit."""
    if item.image is not None:
        try:
            image_header(image_path(item, image_folder, allow_outside), f"{item.where}: record {item.source_id!r}",
                         max_pixels)
        except DataError as e:
            raise ImageLoadError(str(e)) from None


def load_image(item: SampleItem, image_folder: str | os.PathLike | None, seed: int,
               allow_outside: bool = False) -> Image.Image | None:
    """The item's image as RGB, corrupted (deterministically for `seed`) when it asks for it; its
    path is checked again here, so no backend ever reads a file outside the image folder."""
    if item.image is None:
        return None
    path = image_path(item, image_folder, allow_outside)
    try:
        img = open_image(path, f"{item.where}: record {item.source_id!r}")
    except DataError as e:
        raise ImageLoadError(str(e)) from None
    if item.corruption is not None:
        img = apply_corruption(img, item.corruption, corruption_seed(seed, item.record_index, item.corruption))
    return img


def candidate_record(item: SampleItem, candidates: list[str], meta: dict) -> dict:
    """The output line for an item (a candidate record, the input of `sicog curate`) plus
    provenance in `meta`."""
    m = dict(meta)
    m["source_id"] = item.source_id
    if item.reference is not None:
        m["reference"] = item.reference
    return {"id": item.id, "image": item.image, "prompt": item.prompt, "mode": item.mode,
            "candidates": list(candidates), "corruption": item.corruption, "meta": m}

