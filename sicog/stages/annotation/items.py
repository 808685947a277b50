"""The input of `sicog annotate cod`: one item per caption record, and its image as a data URL.

Two layouts are read (.json list or .jsonl, errors name file:line and key):

- LLaVA: `{"id", "image", "conversations": [{"from": "human", "value": "<image>\\nQUESTION"},
  {"from": "gpt", "value": "CAPTION"}]}` (ALLaVA's Caption-VFLAN / -LAION files use it); a
  `caption` key, when present, wins over the gpt turn.
- flat: `{"id", "image", "question" | "instruction", "caption"}`.

Ids must be unique (exactly-once bookkeeping is by id); a record without one gets
`record-<line>`. The image is sent as it is stored when the API accepts its format (JPEG, PNG,
WebP, GIF), re-encoded as PNG otherwise; it is decoded first, so a corrupt file fails here,
naming the record, without a request.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path

from sicog.data.formats import strip_image_token
from sicog.data.images import NOT_FOUND, OUTSIDE, ImageError, image_header, open_image, resolve_image
from sicog.data.records import ROLES, DataError, iter_json_objects, record_id

_SENT_AS_IS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True)
class CaptionItem:
    """One image to annotate."""

    id: str
    where: str  # file:line of the input record
    image: str  # as written in the record (relative to the image folder)
    question: str  # without the <image> placeholder
    caption: str


def _text(rec: dict, keys: tuple[str, ...]) -> str | None:
    for k in keys:
        if isinstance(rec.get(k), str) and rec[k].strip():
            return rec[k]
    return None


def _from_record(rec, where: str, fallback: int) -> CaptionItem:
    if not isinstance(rec, dict):
        raise DataError(f"{where}: key '<record>': expected a JSON object, got {type(rec).__name__}")
    if not isinstance(rec.get("image"), str) or not rec["image"]:
        raise DataError(f"{where}: key 'image': missing or not a non-empty string (CoD annotation needs an image)")
    question, caption = _text(rec, ("question", "instruction")), _text(rec, ("caption",))
    convs = rec.get("conversations")
    if isinstance(convs, list):
        for i, turn in enumerate(convs):
            if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
                raise DataError(f"{where}: key 'conversations[{i}]': expected {{'from': human|gpt, 'value': str}}")
            role = ROLES[turn["from"]]
            if role == "user" and question is None:
                question = turn["value"]
            elif role == "assistant" and caption is None:
                caption = turn["value"]
    if question is None or not strip_image_token(question):
        raise DataError(f"{where}: key 'conversations[0].value' (or 'question'): no question text")
    if caption is None or not caption.strip():
        raise DataError(f"{where}: key 'caption' (or the gpt turn): no original caption")
    if "id" in rec and not isinstance(rec["id"], (str, int)):
        raise DataError(f"{where}: key 'id': must be a string or integer")
    return CaptionItem(record_id(rec, fallback), where, rec["image"], strip_image_token(question),
                       caption.strip())


def read_items(path: str | os.PathLike) -> list[CaptionItem]:
    """Every record of the file as an item, validated before any request (file:line errors)."""
    items: list[CaptionItem] = []
    seen: dict[str, str] = {}
    for lineno, rec in iter_json_objects(path):
        where = f"{path}:{lineno}"
        item = _from_record(rec, where, lineno)
        if item.id in seen:
            raise DataError(f"{where}: key 'id': {item.id!r} repeats {seen[item.id]} (ids must be unique)")
        seen[item.id] = where
        items.append(item)
    if not items:
        raise DataError(f"{path}: no records")
    return items


def image_file(item: CaptionItem, folder: str | None, allow_outside: bool) -> Path:
    """The item's image file, confined to the image folder (sicog.data.images.resolve_image)."""
    return resolve_image(folder, item.image, item.where, allow_outside)


#: why an item cannot be sent (`unsendable`), as counted by `--dry-run`
IMAGE_OUTSIDE, IMAGE_NOT_FOUND, IMAGE_UNREADABLE = "image outside --image-folder", "image not found", "image unreadable"


def image_size(item: CaptionItem, folder: str | None, allow_outside: bool) -> tuple[tuple[int, int] | None, str | None]:
    """((width, height) from the image header, None) when the item can be sent, else (None, why:
    IMAGE_OUTSIDE, IMAGE_NOT_FOUND or IMAGE_UNREADABLE). Reads the header only: an estimate's check."""
    try:
        return image_header(image_file(item, folder, allow_outside), item.where)[0], None
    except ImageError as e:
        return None, {OUTSIDE: IMAGE_OUTSIDE, NOT_FOUND: IMAGE_NOT_FOUND}.get(e.kind, f"image {e.kind}")


def image_data_url(item: CaptionItem, folder: str | None, allow_outside: bool) -> tuple[str, tuple[int, int]]:
    """(a data URL of the decoded-and-checked image, its size); DataError naming the record."""
    path = image_file(item, folder, allow_outside)
    size, fmt = image_header(path, item.where)  # a regular file, below the bomb limit: from its header
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{item.where}: unreadable image {path}: {e.strerror or e}") from None
    img = open_image(raw, f"{item.where}: image {path}")  # decoded now: a truncated file fails here
    if fmt not in _SENT_AS_IS:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        raw, fmt = buf.getvalue(), "PNG"
    return f"data:{_SENT_AS_IS[fmt]};base64,{base64.b64encode(raw).decode('ascii')}", size
