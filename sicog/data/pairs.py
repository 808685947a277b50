"""Preference pairs for DPO: the record shape, reading with errors naming file:line and key, the
lazy pair dataset and its collator.

Pair record (one JSONL line; `sicog pairs` writes this shape)::

    {"id": "img-7#mask", "image": "images/7.png", "prompt": "What is ...? Think step by step.",
     "chosen": "Step 1: ...", "rejected": "Step 1: ...",
     "source": "curated" | "corrupted", "corruption": "mask" | null}

`prompt` is the user's text without the `<image>` placeholder (it is put back for an image
pair); `image` is relative to the source's image folder and omitted for text-only pairs. Other
keys are kept but not read. A pair trains as two conversations that share the prompt and the
image: prompt + chosen and prompt + rejected, labels on the reply only.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import torch
from torch.utils.data import Dataset

from sicog.data import slices
from sicog.data.chat import IGNORE_INDEX, TooLongError, encode_conversation, image_token_id_of
from sicog.data.formats import IMAGE_TOKEN, with_image_token
from sicog.data.images import (
    NOT_FOUND,
    ImageError,
    centre_square_for_crop,
    image_file,
    image_size,
    load_image,
    resolve_image,
)
from sicog.data.records import DataError, Located, iter_json_objects
from sicog.utils.io import SicogError

logger = logging.getLogger(__name__)

PAIR_SOURCES = ("curated", "corrupted")


def _field(where: str, key: str, msg: str) -> DataError:
    return DataError(f"{where}: key '{key}': {msg}")


def validate_pair_record(rec: Any, where: str) -> dict:
    """Check one pair's shape; raise DataError naming `where` (file:line) and the key at fault."""
    if not isinstance(rec, dict):
        raise _field(where, "<record>", f"expected a JSON object, got {type(rec).__name__}")
    if not isinstance(rec.get("id"), (str, int)) or isinstance(rec.get("id"), bool):
        raise _field(where, "id", "missing, or not a string or integer")
    image = rec.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        raise _field(where, "image", "must be a non-empty string (a path relative to the image folder) or absent")
    for key in ("prompt", "chosen", "rejected"):
        if not isinstance(rec.get(key), str):
            raise _field(where, key, f"missing, or not a string (got {type(rec.get(key)).__name__})")
        if not rec[key].strip():
            raise _field(where, key, "is empty")
    if IMAGE_TOKEN in rec["chosen"] or IMAGE_TOKEN in rec["rejected"]:
        raise _field(where, "chosen" if IMAGE_TOKEN in rec["chosen"] else "rejected",
                     f"a reply may not contain the {IMAGE_TOKEN} placeholder")
    if rec["chosen"].strip() == rec["rejected"].strip():
        raise _field(where, "rejected", "equals chosen (such a pair carries no preference)")
    if rec.get("source") is not None and rec["source"] not in PAIR_SOURCES:
        raise _field(where, "source", f"must be one of {list(PAIR_SOURCES)} or absent, got {rec['source']!r}")
    if rec.get("corruption") is not None and not isinstance(rec["corruption"], str):
        raise _field(where, "corruption", "must be a string or null")
    return rec


def read_pairs(path: str, on_error: str = "raise", counts: Counter | None = None) -> list[Located]:
    """Every pair of a .jsonl/.json file, validated; a bad one raises (or, with on_error="skip",
    is counted in `counts["malformed_record"]` and dropped)."""
    counts = counts if counts is not None else Counter()
    out = []
    for lineno, obj in iter_json_objects(path, yield_errors=True):
        try:
            if isinstance(obj, DataError):
                raise obj
            out.append(Located(validate_pair_record(obj, f"{path}:{lineno}"), str(path), lineno))
        except DataError as e:
            if on_error == "raise":
                raise
            counts["malformed_record"] += 1
            logger.warning("skipping malformed pair: %s", e)
    return out


def pair_conversation(rec: dict, reply: str) -> dict:
    """One side of a pair as a training record (prompt, then the reply)."""
    human = with_image_token(rec["prompt"]) if rec.get("image") else rec["prompt"]
    out = {"id": rec["id"], "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": reply}]}
    if rec.get("image"):
        out["image"] = rec["image"]
    return out


class PairDataset(Dataset):
    """Pairs of one file: both sides tokenized at build time (so over-long pairs and missing
    images are found before training), images loaded in `__getitem__`. With a slicing processor
    (`arch: uhd`) an image's layout is set from its header's size at build time; its slices are
    made in `__getitem__` (no training-time grid resize: both sides and the reference log-probs
    must see the same image every time).

    An example: chosen/rejected input_ids and labels, pixel_values (or None) and `pair_id`
    (`offset` + position, unique across the sources of a run: the key of precomputed
    reference log-probs)."""

    def __init__(self, records: list[Located], processor: Any, image_folder: str | None, max_length: int,
                 on_error: str = "raise", name: str | None = None, allow_outside: bool = False, offset: int = 0):
        self.processor, self.image_folder, self.allow_outside = processor, image_folder, allow_outside
        self.on_error, self.offset = on_error, offset
        self.sliced = slices.slices_images(processor)
        self.name = name or (records[0].path if records else "<empty>")
        self.skip_counts: Counter = Counter()
        self.records: list[Located] = []
        self.encoded: list[tuple[Any, Any]] = []
        for loc in records:
            try:
                path = self.image_path(loc)
                if path is not None:
                    image_file(path, f"{loc.where}: key 'image'")
                layout = None
                if path is not None and self.sliced:  # its size sets its tokens
                    layout = slices.layout_for_size(self.processor, *image_size(path, loc.where))
                sides = tuple(encode_conversation(self.processor, pair_conversation(loc.record, loc.record[k]),
                                                  max_length, loc.where, image_text=layout)
                              for k in ("chosen", "rejected"))
            except DataError as e:
                if on_error == "raise":
                    raise
                kind = "too_long" if isinstance(e, TooLongError) else (
                    ("missing_image" if e.kind == NOT_FOUND else "unreadable_image") if isinstance(e, ImageError) else
                    "missing_image" if "image not found" in str(e) else
                    "unreadable_image" if "unreadable image" in str(e) else "malformed_record")
                self.skip_counts[kind] += 1
                logger.warning("skipping pair (%s): %s", kind, e)
                continue
            self.records.append(loc)
            self.encoded.append(sides)
        if not self.records:
            raise DataError(f"{self.name}: no usable preference pairs (skipped: {dict(self.skip_counts)})")

    def image_path(self, loc: Located):
        image = loc.record.get("image")
        return resolve_image(self.image_folder, image, loc.where, self.allow_outside) if image else None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def lengths(self) -> list[int]:
        """Tokens of the longer side of each pair (for length-grouped batching)."""
        return [max(len(c.input_ids), len(r.input_ids)) for c, r in self.encoded]

    def has_image(self, i: int) -> bool:
        return bool(self.records[i].record.get("image"))

    def record_for(self, i: int) -> Located:
        return self.records[i]

    def __getitem__(self, i: int) -> dict:
        loc, (chosen, rejected) = self.records[i], self.encoded[i]
        images: dict = {"pixel_values": None}
        if chosen.has_image:
            # an image that exists but does not decode is an error even with on_error=skip: the
            # pair was counted as usable (and its reference log-probs keyed) at build time
            img = load_image(self.image_path(loc), loc.where, slices.max_pixels_of(self.processor))
            if self.sliced:
                images, layout = slices.image_inputs(self.processor, img)
                expected = list(chosen.input_ids).count(image_token_id_of(self.processor))
                if layout.count(slices.image_token_of(self.processor)) != expected:
                    raise DataError(f"{loc.where}: image {self.image_path(loc)} changed size since the pairs were read")
            else:
                img = centre_square_for_crop(self.processor, img)
                images["pixel_values"] = self.processor.image_processor(images=[img], return_tensors="pt")[
                    "pixel_values"][0]
        return {"chosen_input_ids": chosen.input_ids, "chosen_labels": chosen.labels,
                "rejected_input_ids": rejected.input_ids, "rejected_labels": rejected.labels,
                **images, "pair_id": self.offset + i}


class PairCollator:
    """A batch of B pairs as 2B rows: the chosen sides, then the rejected sides (right-padded),
    pixel_values once per side in row order (LLaVA fills image tokens in order); `pair_ids`.
    Sliced images (`arch: uhd`) are padded into one tensor the same way (`slices.collate_slices`)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: list[dict]) -> dict:
        rows = [(e["chosen_input_ids"], e["chosen_labels"]) for e in examples]
        rows += [(e["rejected_input_ids"], e["rejected_labels"]) for e in examples]
        longest = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
        attn = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, (row_ids, row_labels) in enumerate(rows):
            ids[i, :len(row_ids)] = torch.as_tensor(row_ids, dtype=torch.long)
            labels[i, :len(row_labels)] = torch.as_tensor(row_labels, dtype=torch.long)
            attn[i, :len(row_ids)] = 1
        batch = {"input_ids": ids, "attention_mask": attn, "labels": labels,
                 "pair_ids": torch.tensor([e["pair_id"] for e in examples], dtype=torch.long)}
        if any("slice_sizes" in e for e in examples):
            return {**batch, **slices.collate_slices(examples + examples)}
        pixels = [e["pixel_values"] for e in examples if e.get("pixel_values") is not None]
        if pixels:
            batch["pixel_values"] = torch.stack(pixels + pixels)
        return batch


def check_pair_files(sources: list, heldout: str | None, heldout_folder: str | None, on_error: str,
                     allow_outside: bool) -> None:
    """Every pair file's lines and image paths, checked before a model is loaded (cheap: nothing
    is tokenized or decoded), so a bad file fails in seconds; `PairDataset` checks again."""
    files = [(f"data.sources[{k}]", src.path, src.image_folder, on_error) for k, src in enumerate(sources)]
    if heldout:
        files.append(("dpo.heldout", heldout, heldout_folder, "raise"))
    for key, path, folder, mode in files:
        if not path:
            raise SicogError(f"{key}.path: missing")
        for loc in read_pairs(path, mode):
            image = loc.record.get("image")
            if image and mode == "raise":
                image_file(resolve_image(folder, image, loc.where, allow_outside), f"{loc.where}: key 'image'")


def build_pair_sources(sources: list, processor: Any, max_length: int, on_error: str,
                       allow_outside: bool) -> list[PairDataset]:
    """One PairDataset per `DataSource` (its `max_samples` first pairs), with disjoint pair ids."""
    parts, offset = [], 0
    for k, src in enumerate(sources):
        if not src.path:
            raise SicogError(f"data.sources[{k}].path: missing")
        counts: Counter = Counter()
        records = read_pairs(src.path, on_error, counts)
        if src.max_samples is not None:
            records = records[: src.max_samples]
        part = PairDataset(records, processor, src.image_folder, max_length, on_error, name=src.path,
                           allow_outside=allow_outside, offset=offset)
        part.skip_counts.update(counts)
        offset += len(part)
        parts.append(part)
    return parts


def preflight_pairs(dataset, processor: Any, model: Any, batch_size: int) -> dict:
    """`sicog.data.preflight.preflight_check` on the chosen sides of a first batch (with an image
    pair when there is one): image tokens vs. features, labels exactly on the replies."""
    from sicog.data.dataset import DataCollator
    from sicog.data.preflight import preflight_check

    idx = list(range(min(batch_size, len(dataset))))
    if not any(dataset.has_image(i) for i in idx):
        first = next((i for i in range(min(len(dataset), 10_000)) if dataset.has_image(i)), None)
        if first is not None:
            idx[-1] = first
    examples, records = [], []
    for i in idx:
        e, loc = dataset[i], dataset.record_for(i)
        examples.append({"input_ids": e["chosen_input_ids"], "labels": e["chosen_labels"],
                         **{k: e[k] for k in ("pixel_values", "slice_sizes", "image_grids") if k in e}})
        records.append(Located(pair_conversation(loc.record, loc.record["chosen"]), loc.path, loc.line))
    summary = preflight_check(DataCollator(processor)(examples), processor, model, records)
    logger.info("pre-flight check passed: %s", summary)
    return summary
