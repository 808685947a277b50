"""Training datasets: lazy supervised dataset, the mixture of sources, collator, pre-flight.

- `SupervisedDataset`: one list of records; tokenizes and loads images in `__getitem__`
  (lazy: nothing is decoded at build time). Record-level faults — malformed line, missing
  image, unreadable image, over-long record — raise DataError naming file:line, or with
  `on_error="skip"` are dropped and counted (`skip_counts`). Missing images and over-long
  records are found at build time so the counts are known before training starts; an image
  that exists but cannot be decoded is only found when read, and is then replaced by the next
  good record and counted.
- `build_train_dataset`: the config's sources read and mixed by `weight` or `share`
  (`MixtureDataset`, `source_weights` in `sicog.data.mixture`), deterministic given the seed.
- `DataCollator`: right padding, `pixel_values` stacked for the examples that have an image.
- `lengths`: token lengths estimated without loading images, for length-grouped batching
  (`sicog.stages.trainer.EpochLengthGroupedSampler(batch_size, dataset.lengths, seed)`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset

from sicog.config import ON_ERROR, DataConfig
from sicog.data import slices
from sicog.data.chat import (
    IGNORE_INDEX,
    TooLongError,
    encode_conversation,
    image_token_count,
    to_messages,
    tokenizer_of,
)
from sicog.data.example_cache import ExampleCache
from sicog.data.images import (
    NOT_FOUND,
    ImageError,
    centre_square_for_crop,
    image_file,
    image_size,
    load_image,
    resolve_image,
)
from sicog.data.mixture import MixtureDataset, source_weights
from sicog.data.preflight import preflight_check
from sicog.data.records import (
    DataError,
    Located,
    iter_json_objects,
    validate_training_record,
)
from sicog.utils.io import SicogError

logger = logging.getLogger(__name__)


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise SicogError(f"data.on_error: expected one of {ON_ERROR}, got {on_error!r}")


def read_source(path: str, on_error: str = "raise", counts: Counter | None = None) -> list[Located]:
    """Read and validate a .json/.jsonl training file; malformed records raise DataError naming
    file:line, or with on_error="skip" are dropped and counted in `counts["malformed_record"]`."""
    _check_on_error(on_error)
    counts = counts if counts is not None else Counter()
    out = []
    for lineno, obj in iter_json_objects(path, yield_errors=True):
        where = f"{path}:{lineno}"
        try:
            if isinstance(obj, DataError):
                raise obj
            out.append(Located(validate_training_record(obj, where), path, lineno))
        except DataError as e:
            if on_error == "raise":
                raise
            counts["malformed_record"] += 1
            logger.warning("skipping malformed record: %s", e)
    return out


class SupervisedDataset(Dataset):
    """Lazy LLaVA dataset: `__getitem__` -> dict(input_ids, labels, pixel_values or None)."""

    def __init__(self, records: list[Located], processor: Any, image_folder: str | None, max_length: int,
                 on_error: str = "raise", name: str | None = None, allow_outside: bool = False,
                 training_resize: slices.TrainingResize | None = None, seed: int = 0):
        _check_on_error(on_error)
        self.training_resize, self.seed = training_resize, seed  # sliced images: slices.training_resize_target
        self.processor, self.allow_outside = processor, allow_outside  # image paths may leave image_folder
        self.sliced = slices.slices_images(processor)  # image tokens depend on each image's size
        self._sizes: dict[str, tuple[int, int]] = {}  # where -> (width, height), sliced images only
        self.image_folder = image_folder
        self.max_length = max_length
        self.on_error = on_error
        self.name = name or (records[0].path if records else "<empty>")
        self.skip_counts: Counter = Counter()
        self._replaced: dict[int, int] = {}
        self._cache = ExampleCache()  # unsliced examples (sicog.data.example_cache: exact, bounded)
        self.records = self._drop_missing_images(records)
        self._lengths = self._estimate_lengths()
        self._drop_overlong()
        if not self.records:
            raise DataError(f"{self.name}: no usable training records (skipped: {dict(self.skip_counts)})")

    # ------------------------------------------------------------------ build-time scans
    def _fault(self, kind: str, err: DataError) -> None:
        if self.on_error == "raise":
            raise err
        self.skip_counts[kind] += 1
        logger.warning("skipping record (%s): %s", kind, err)

    def image_path(self, loc: Located):
        """Where the record's image lives (None for a text-only record)."""
        image = loc.record.get("image")
        return resolve_image(self.image_folder, image, loc.where, self.allow_outside) if image else None

    def _drop_missing_images(self, records: list[Located]) -> list[Located]:
        kept = []
        for loc in records:
            try:  # cheap structural check (e.g. a stray <image> placeholder) before any tokenizing
                to_messages(loc)
                path = self.image_path(loc)  # a path leaving the image folder is refused here
            except DataError as e:
                self._fault("malformed_record", e)
                continue
            if path is not None:
                try:  # a regular file (sicog.data.images.image_file): not missing, a FIFO, a loop ...
                    image_file(path, loc.where)
                except ImageError as e:
                    self._fault("missing_image" if e.kind == NOT_FOUND else "unreadable_image", e)
                    continue
            if path is not None and self.sliced:  # its size sets its tokens: read the header now
                try:
                    self._sizes[loc.where] = image_size(path, loc.where)
                except DataError as e:
                    self._fault("unreadable_image", e)
                    continue
            kept.append(loc)
        return kept

    def _estimate_lengths(self) -> list[int]:
        """Text tokens of every turn + chat-template overhead + image tokens, without images.

        The template overhead is measured once on two probe conversations (one and two
        exchanges), so the estimate is close to the exact length for any template.
        """
        tok = tokenizer_of(self.processor)
        n_img = 0
        if any(r.record.get("image") for r in self.records) and not self.sliced:
            n_img = image_token_count(self.processor)
        probe1 = {"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}
        probe2 = {"conversations": probe1["conversations"] * 2}
        over = [len(encode_conversation(self.processor, p, 10**9, "probe").input_ids)
                - 2 * k for k, p in ((1, probe1), (2, probe2))]
        per_exchange, base = over[1] - over[0], 2 * over[0] - over[1]
        texts = [t["value"] for r in self.records for t in r.record["conversations"]]
        counts = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []
        lengths, pos = [], 0
        for r in self.records:
            turns = r.record["conversations"]
            n_text = sum(counts[pos:pos + len(turns)])
            pos += len(turns)
            n = n_text + base + per_exchange * ((len(turns) + 1) // 2)
            if r.record.get("image"):
                n += 1 + (self._layout(r).count(slices.image_token_of(self.processor)) if self.sliced else n_img)
            lengths.append(n)
        return lengths

    def _layout(self, loc: Located) -> str | None:
        """The layout text of a sliced record's image, from its size read at build time; None for
        other processors and text-only records."""
        if not self.sliced or not loc.record.get("image"):
            return None
        size = self._sizes[loc.where]
        if self.training_resize is not None:  # the deterministic long-side rule sets the size it is sliced at
            size = slices.long_side_target(size, str(loc.record["image"]), self.training_resize) or size
        return slices.layout_for_size(self.processor, *size)

    def _drop_overlong(self) -> None:
        """Encode exactly the records whose estimate is near or over max_length; drop/raise the
        over-long ones now (the rest are checked again, exactly, when read)."""
        slack = 16 + self.max_length // 20
        keep = []
        for loc, est in zip(self.records, self._lengths):
            if est > self.max_length - slack:
                try:
                    est = len(encode_conversation(self.processor, loc, self.max_length,
                                                  image_text=self._layout(loc)).input_ids)
                except TooLongError as e:
                    self._fault("too_long", e)
                    continue
            keep.append((loc, est))
        self.records = [k[0] for k in keep]
        self._lengths = [k[1] for k in keep]

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.records)

    @property
    def lengths(self) -> list[int]:
        """Estimated token length of each example (for length-grouped batching)."""
        return self._lengths

    def has_image(self, i: int) -> bool:
        return bool(self.records[i].record.get("image"))

    def record_for(self, i: int) -> Located:
        """The record example i was built from (after any replacement of an unreadable image)."""
        return self.records[self._replaced.get(i, i)]

    def __getitem__(self, i: int) -> dict:
        cached = self._cache.get(i)
        if cached is not None:
            return cached
        n = len(self.records)
        for attempt in range(n):
            j = (i + attempt) % n
            loc = self.records[j]
            if self.sliced:
                example = self._sliced_example(loc)
                if example is None:
                    continue
                if j != i:
                    self._replaced[i] = j
                return example
            try:
                enc = encode_conversation(self.processor, loc, self.max_length)
            except TooLongError as e:  # estimate was below max_length - slack, exact length is not
                self._fault("too_long", e)  # raises with on_error="raise"
                continue
            pixel_values = None
            if enc.has_image:
                try:
                    img = load_image(self.image_path(loc), loc.where)
                except DataError as e:
                    self._fault("unreadable_image", e)
                    continue
                img = centre_square_for_crop(self.processor, img)
                pixel_values = self.processor.image_processor(images=[img], return_tensors="pt")["pixel_values"][0]
            example = {"input_ids": enc.input_ids, "labels": enc.labels, "pixel_values": pixel_values}
            if j != i:
                self._replaced[i] = j
            else:  # a replaced record is read again (and counted) each time, as before
                self._cache.put(i, example)
            return example
        raise DataError(f"{self.name}: every record failed to load (skipped: {dict(self.skip_counts)})")

    def _sliced_example(self, loc: Located) -> dict | None:
        """A record for a slicing processor: the image is read first (its size sets its tokens).
        An image drawn for the grid resize that would then be too long keeps its own size."""
        tensors, layout, images = {"pixel_values": None}, None, [None]
        if loc.record.get("image"):
            try:
                img = load_image(self.image_path(loc), loc.where, slices.max_pixels_of(self.processor))
            except DataError as e:
                self._fault("unreadable_image", e)
                return None
            target = slices.training_resize_target(self.processor, img.size, str(loc.record["image"]),
                                                   self.training_resize, self.seed, loc.where)
            images = ([img.resize(target, Image.Resampling.BICUBIC)] if target else []) + [img]
        for k, image in enumerate(images):
            if image is not None:
                try:
                    tensors, layout = slices.image_inputs(self.processor, image)
                except ValueError as e:  # the image processor's refusals (e.g. above its pixel limit)
                    self._fault("unreadable_image", DataError(f"{loc.where}: {e}"))
                    return None
            try:
                enc = encode_conversation(self.processor, loc, self.max_length, image_text=layout)
            except TooLongError as e:
                if k + 1 < len(images):
                    continue
                self._fault("too_long", e)
                return None
            return {"input_ids": enc.input_ids, "labels": enc.labels, **tensors}
        return None


def build_train_dataset(data_cfg: DataConfig, processor: Any, seed: int = 0,
                        training_resize: slices.TrainingResize | None = None) -> MixtureDataset:
    """The training dataset of a `DataConfig`: every source read, validated and mixed by weight;
    `training_resize`: sliced images' training-time resizes (`model.uhd`, `slices.TrainingResize`)."""
    _check_on_error(data_cfg.on_error)
    if not data_cfg.sources:
        raise SicogError("data.sources: at least one training file is required")
    parts, weights = [], source_weights(data_cfg.sources)
    for k, src in enumerate(data_cfg.sources):
        if not src.path:
            raise SicogError(f"data.sources[{k}].path: missing")
        counts: Counter = Counter()
        records = read_source(src.path, data_cfg.on_error, counts)
        if src.max_samples is not None:
            records = records[: src.max_samples]
        part = SupervisedDataset(records, processor, src.image_folder, data_cfg.max_length, data_cfg.on_error,
                                 name=src.path, allow_outside=data_cfg.allow_images_outside_folder,
                                 training_resize=training_resize, seed=seed)
        part.skip_counts.update(counts)
        parts.append(part)
    mix = MixtureDataset(parts, weights, data_cfg.num_samples, seed)
    n_img = sum(p.has_image(j) for p in parts for j in range(len(p)))
    logger.info("training data: %d samples per epoch from %d source(s); %d image and %d text-only records; "
                "skipped: %s", len(mix), len(parts), n_img, sum(len(p) for p in parts) - n_img,
                dict(mix.skip_counts) or "none")
    return mix


class DataCollator:
    """Right-pads input_ids (pad id), labels (-100) and attention_mask; stacks the pixel_values
    of the examples that have an image, in batch order (LLaVA fills image tokens in order)."""

    def __init__(self, processor: Any, pad_to_multiple_of: int | None = None):
        tok = tokenizer_of(processor)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            raise SicogError("the tokenizer has neither a pad nor an eos token to pad batches with")
        self.pad_id = int(pad)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: list[dict]) -> dict:
        m = self.pad_to_multiple_of or 1
        longest = (max(len(e["input_ids"]) for e in examples) + m - 1) // m * m
        ids = torch.full((len(examples), longest), self.pad_id, dtype=torch.long)
        labels = torch.full((len(examples), longest), IGNORE_INDEX, dtype=torch.long)
        attn = torch.zeros((len(examples), longest), dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[i, :n] = torch.as_tensor(e["input_ids"], dtype=torch.long)
            labels[i, :n] = torch.as_tensor(e["labels"], dtype=torch.long)
            attn[i, :n] = 1
        batch = {"input_ids": ids, "attention_mask": attn, "labels": labels}
        if any("slice_sizes" in e for e in examples):  # sliced images: variable tensors per image
            return {**batch, **slices.collate_slices(examples)}
        pixels = [e["pixel_values"] for e in examples if e.get("pixel_values") is not None]
        if pixels:
            batch["pixel_values"] = torch.stack(pixels)
        return batch


def run_preflight(dataset: SupervisedDataset | MixtureDataset, collator: DataCollator, processor: Any,
                  model: Any = None, batch_size: int = 4) -> dict:
    """Build a first batch (with at least one image example when the data has any), collate it
    and run `preflight_check` against the records it came from; raises SicogError on a fault."""
    idx = list(range(min(batch_size, len(dataset))))
    if not any(dataset.has_image(i) for i in idx):
        first_image = next((i for i in range(min(len(dataset), 10_000)) if dataset.has_image(i)), None)
        if first_image is not None:
            idx[-1] = first_image
    examples = [dataset[i] for i in idx]
    records = [dataset.record_for(i) for i in idx]
    summary = preflight_check(collator(examples), processor, model, records)
    logger.info("pre-flight check passed: %s", summary)
    return summary
