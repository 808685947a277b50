"""What every converter shares: stream the input, convert record by record, count every skip
and every change, write as it goes.

`convert_file(job, convert)` reads `job.data` record by record (`sicog.data.sources`: a JSON
list, JSON Lines or parquet, told from the content), gives each record a unique id (`ids`:
a repeated id becomes `<id>#2`, ...), and calls `convert(record, ctx)` on it (each record is parsed
afresh from the input, which is never written: a converter may change the record it gets). The converter returns its output records by output flag, raises
`Skip(reason, detail)` for a record it cannot use, and reports every change it makes to a record
that stays (a dropped turn, a moved placeholder) with `ctx.changed(reason, detail)`. A line that
is not JSON is skipped as `invalid-json`. Outputs are written while reading, each to a temporary
file renamed into place at the end (a reader never sees half a file), then `<first
output>.summary.json`: records read, written per output, skipped per reason and changed per
reason, each with its first examples (file:N and why). Nothing is skipped or changed silently.

Settings every converter has (`ConvertConfig`): --limit N keeps the first N usable records,
--sample N --seed S a uniform random N of them (`reservoir`; held in memory until the end, then
written in input order), --exclude FILE skips the records whose id is in FILE (a warm-up set, to
draw a pool from the rest of the same file), --extract-images-to DIR writes images stored in the
input (`sicog.data.embedded`) and points the records there, --allow-images-outside-folder lets
image paths leave --image-folder.

Outputs are claimed as every command's: apart from the inputs, writable, one writer at a time
(`<output>.lock` of each output; temp files a killed run left beside them are removed then); an
output whose summary records the same settings is kept (nothing to do), other settings are
refused unless --overwrite.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from sicog.config_flags import setting
from sicog.data.converters.ids import UniqueIds
from sicog.data.converters.reservoir import Reservoir
from sicog.data.embedded import ImageExtractor, is_embedded
from sicog.data.images import BAD_PATH, NOT_A_FILE, NOT_FOUND, OUTSIDE, ImageError, image_file, resolve_image
from sicog.data.records import DataError, record_id
from sicog.data.sources import fingerprint, iter_json_records, iter_source, parquet_files
from sicog.utils.io import SicogError, atomic_write, dumps, remove_stale_temps, write_json
from sicog.utils.lock import as_recorded, check_finished, check_writable, output_locks
from sicog.utils.paths import check_outputs_apart

logger = logging.getLogger(__name__)
EXAMPLES_PER_REASON = 20
#: settings that do not change what is written
_NOT_SETTINGS = ("data", "overwrite", "progress")


class Skip(Exception):
    """A record this converter cannot use: `reason` is the counted key, `detail` says what is wrong."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class ConvertConfig:
    """The settings every `sicog convert NAME` has (a converter's config extends it)."""

    data: str | None = setting(None, "input records: a .json list or .jsonl file (told from the content), or "
                                     "parquet: one file, a folder of shards or a glob", required=True)
    image_folder: str | None = setting(None, "when given, every image must exist inside it (else the record is "
                                             "skipped and counted)")
    allow_images_outside_folder: bool = setting(False, "accept image paths that leave --image-folder (absolute "
                                                       "paths, '..', symlinks): training then needs "
                                                       "data.allow_images_outside_folder too")
    extract_images_to: str | None = setting(None, "write images stored in the input (parquet) to this folder, "
                                                  "once each, and point the records there")
    limit: int = setting(0, "keep the first N usable records (0: all); the rest are counted as over-limit", min=0)
    sample: int = setting(0, "keep a uniform random N of the usable records (0: all), chosen with --seed; the "
                             "rest are counted as not-sampled", min=0)
    seed: int = setting(0, "random seed of --sample")
    exclude: str | None = setting(None, "skip the records whose id is in this file (counted as excluded): e.g. "
                                        "the warm-up set, to draw a pool from the rest of the same input")
    progress: bool = setting(True, "no progress bar", invert="--no-progress")
    overwrite: bool = setting(False, "replace an output made with other settings")

    def check_common(self) -> None:
        """The rule across the common settings (each one's range: sicog.config_flags.check_config)."""
        if self.limit and self.sample:
            raise SicogError("--limit and --sample both choose records: give one of them")


@dataclass
class Job:
    """One conversion: its input, its outputs by flag, and the settings that decide them."""

    name: str
    data: str
    outputs: dict[str, str]  # flag -> path, the first one carries the summary and the lock
    settings: dict
    overwrite: bool = False
    progress: bool = True
    inputs: dict[str, str | None] = field(default_factory=dict)  # other inputs by flag (image folder)
    image_folder: str | None = None
    allow_outside: bool = False
    extract_images_to: str | None = None
    limit: int = 0
    sample: int = 0
    seed: int = 0
    exclude: str | None = None

    @classmethod
    def from_config(cls, name: str, cfg: ConvertConfig, outputs: dict[str, str]) -> Job:
        cfg.check_common()
        return cls(name, cfg.data, outputs,
                   settings={k: v for k, v in asdict(cfg).items() if k not in _NOT_SETTINGS},
                   overwrite=cfg.overwrite, progress=cfg.progress,
                   inputs={"--image-folder": cfg.image_folder, "--exclude": cfg.exclude},
                   image_folder=cfg.image_folder, allow_outside=cfg.allow_images_outside_folder,
                   extract_images_to=cfg.extract_images_to, limit=cfg.limit, sample=cfg.sample, seed=cfg.seed,
                   exclude=cfg.exclude)

    @property
    def summary_path(self) -> Path:
        first = Path(next(iter(self.outputs.values())))
        return first.with_name(first.name + ".summary.json")


@dataclass
class Context:
    """What a converter knows about the record in hand, and how it reports a change."""

    where: str  # file:N
    id: str  # the record's unique id (see `ids`)
    image_folder: str | None = None
    allow_outside: bool = False
    extracted: str | None = None  # the image's path when it was stored in the input and extracted
    changes: list[tuple[str, str]] = field(default_factory=list)

    def changed(self, reason: str, detail: str) -> None:
        """Report one change made to the record (counted by reason in the summary)."""
        self.changes.append((reason, detail))

    def image(self, rec: dict, required: bool = True) -> str | None:
        """The record's image path, checked (see `relative_image`)."""
        if self.extracted is not None:
            return self.extracted
        return relative_image(rec, self.image_folder, self.where, required, self.allow_outside)


class _Tally:
    """Counts by reason, with the first examples of each."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, example: str | Callable[[], str], n: int = 1) -> None:
        """Count `n` under `reason`; `example` (or what it returns, built only while examples are
        still wanted) is kept among the first ones."""
        self.counts[reason] += n
        if len(self.examples.setdefault(reason, [])) < EXAMPLES_PER_REASON:
            self.examples[reason].append(example() if callable(example) else example)


def _finished(job: Job, want: dict) -> dict | None:
    existing = [p for p in job.outputs.values() if Path(p).exists()]
    if not existing:
        return None
    try:
        old = json.loads(job.summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    complete = len(existing) == len(job.outputs)
    recorded = old.get("settings") if complete and isinstance(old, dict) else None
    return old if check_finished(existing[0], recorded, want, job.summary_path, job.overwrite) else None


def _check_paths(job: Job, outs: dict[str, Path]) -> None:
    if len({p.resolve() for p in outs.values()}) < len(outs):
        flags = " and ".join(outs)
        raise SicogError(f"{flags} name the same file ({next(iter(outs.values()))}): each output needs its own")
    folders = {f"the folder of --data's shard {p.name}": str(p.parent) for p in (parquet_files(job.data) or [])}
    check_outputs_apart({**outs, "the summary": job.summary_path}, {"--data": job.data, **job.inputs, **folders})
    # the images may go inside --image-folder (one folder for training), never among the inputs
    check_outputs_apart({"--extract-images-to": job.extract_images_to},
                        {"--data": job.data, "--exclude": job.exclude, **folders})
    if job.image_folder is not None and not Path(job.image_folder).is_dir():  # else every record says "missing"
        why = "is a file; expected a folder" if Path(job.image_folder).exists() else "folder not found"
        raise SicogError(f"--image-folder {job.image_folder}: {why}")
    for flag, p in outs.items():
        check_writable(p, flag, "file")
    if job.extract_images_to:
        check_writable(job.extract_images_to, "--extract-images-to", "dir")


def _read_ids(path: str) -> set[str]:
    ids = set()
    for n, rec in iter_json_records(path):
        if not isinstance(rec, dict) or "id" not in rec:
            raise DataError(f"{path}:{n}: key 'id': missing; --exclude needs records with ids")
        ids.add(str(rec["id"]))
    return ids


def _image_path_for(job: Job, name: str) -> str:
    """The record's path of an extracted image: relative to --image-folder when the extraction
    folder lies inside it (one folder for training), else relative to --extract-images-to."""
    target = Path(job.extract_images_to).resolve() / name
    if job.image_folder is not None:
        base = Path(job.image_folder).resolve()
        if base in target.parents:
            return str(target.relative_to(base))
    return name


def convert_file(job: Job, convert: Callable[[dict, Context], dict[str, list[dict]]]) -> dict:
    """Run `convert` over every record of job.data; returns the summary (see the module docstring)."""
    outs = {flag: Path(p) for flag, p in job.outputs.items()}
    _check_paths(job, outs)
    want = as_recorded({"converter": job.name, "data": fingerprint(job.data), **job.settings})
    with output_locks(outs):
        for p in (*outs.values(), job.summary_path):  # a killed run's temp files: we hold every lock, none is live
            remove_stale_temps(p, older_than=0)
        done = _finished(job, want)
        if done is not None:
            logger.info("%s: finished with these settings, nothing to do", ", ".join(map(str, outs.values())))
            return done
        summary = _convert(job, convert, outs, want)
    for reason, n in summary["skipped"].items():
        logger.warning("%s: skipped %d record(s): %s (first: %s)", job.name, n, reason,
                       summary["skipped_examples"][reason][0])
    for reason, n in summary["changed"].items():
        logger.info("%s: changed %d record(s): %s (first: %s)", job.name, n, reason,
                    summary["changed_examples"][reason][0])
    logger.info("%s: read %d record(s), wrote %s, skipped %d (%s)", job.name, summary["read"],
                ", ".join(f"{n} to {outs[f]}" for f, n in summary["written"].items()),
                sum(summary["skipped"].values()), job.summary_path)
    return summary


def _convert(job: Job, convert: Callable, outs: dict[str, Path], want: dict) -> dict:
    from tqdm.auto import tqdm

    excluded = _read_ids(job.exclude) if job.exclude else set()
    extractor = ImageExtractor(job.extract_images_to) if job.extract_images_to else None
    reservoir = Reservoir(job.sample, job.seed) if job.sample else None
    ids = UniqueIds()
    skipped, changed = _Tally(), _Tally()
    written = dict.fromkeys(outs, 0)
    read = usable = 0
    pending: dict[int, tuple[str, str]] = {}  # sampled records' stored images: position -> (name, where)

    with contextlib.ExitStack() as stack:
        files = {flag: stack.enter_context(atomic_write(p)) for flag, p in outs.items()} if reservoir is None else {}

        def emit(converted: dict[str, list[dict]], changes: list[tuple[str, str]], where: str) -> None:
            for flag, recs in converted.items():
                for r in recs:
                    files[flag].write(dumps(r) + "\n")  # strict JSON: an input's NaN is written as null
                written[flag] += len(recs)
            for reason in dict.fromkeys(r for r, _ in changes):
                changed.add(reason, lambda reason=reason: f"{where}: " + "; ".join(d for r, d in changes if r == reason))

        records = tqdm(iter_source(job.data, yield_errors=True), unit="rec", desc=job.name,
                       disable=not job.progress, dynamic_ncols=True)
        for where, rec in records:
            read += 1
            try:
                if isinstance(rec, DataError):
                    raise Skip("invalid-json", str(rec).split(": ", 1)[-1])
                if not isinstance(rec, dict):
                    raise Skip("bad-record", f"expected a JSON object, got {type(rec).__name__}")
                if "id" in rec and (not isinstance(rec["id"], (str, int)) or isinstance(rec["id"], bool)):
                    raise Skip("bad-id", f"key 'id': expected a string or integer, got {_shown(rec['id'])}")
                original = record_id(rec, read)
                ctx = Context(where, ids.assign(original), job.image_folder, job.allow_outside)
                if ctx.id != original:
                    ctx.changed("id-made-unique", f"id {original!r} repeats: written as {ctx.id!r}")
                if ctx.id in excluded:
                    raise Skip("excluded", f"id {ctx.id!r} is in --exclude {job.exclude}")
                stored = rec.get("image") if is_embedded(rec.get("image")) else None
                if isinstance(rec.get("image"), dict) and stored is None:
                    if rec["image"].get("bytes") not in (None, b""):  # text in JSON, not bytes: never dropped unsaid
                        raise Skip("bad-image", f"key 'image.bytes': expected the image's bytes (parquet), got "
                                                f"{type(rec['image']['bytes']).__name__}")
                    path = rec["image"].get("path")  # a stored image without bytes: its path alone
                    if not isinstance(path, str) or not path:  # neither: a bad image, not a text-only record
                        raise Skip("bad-image", "key 'image': a stored image with neither bytes nor a path")
                    rec["image"] = path
                if stored is not None:
                    if extractor is None:
                        raise SicogError(f"{where}: key 'image': the image is stored in the file; pass "
                                         f"--extract-images-to DIR to write such images out")
                    name = extractor.name_for(stored)
                    rec["image"] = ctx.extracted = _image_path_for(job, name)
                converted = convert(rec, ctx)
                if job.limit and usable >= job.limit:
                    raise Skip("over-limit", f"--limit {job.limit} reached")
                usable += 1
            except Skip as s:
                skipped.add(s.reason, f"{where}: {s.detail}")
                continue
            if reservoir is not None:
                reservoir.offer((read, where, converted, ctx.changes, name if stored is not None else None))
                continue
            if stored is not None:
                extractor.write(stored, name, where)
            emit(converted, ctx.changes, where)
        records.close()

        if reservoir is not None:
            chosen = reservoir.items()
            if reservoir.dropped:
                skipped.add("not-sampled", f"--sample {job.sample} --seed {job.seed}: {reservoir.dropped} of "
                                           f"{reservoir.offered} usable records not drawn", reservoir.dropped)
            files = {flag: stack.enter_context(atomic_write(p)) for flag, p in outs.items()}
            for position, where, converted, changes, name in chosen:
                if name is not None:
                    pending[position] = (name, where)
                emit(converted, changes, where)
            if pending:
                _write_pending(job, extractor, pending)
        if not usable:
            why = "; ".join(f"{r}: {n}, first {skipped.examples[r][0]}" for r, n in skipped.counts.items())
            raise SicogError(f"{job.data}: no record could be converted ({why or 'empty file'}); "
                             f"is this a {job.name} file?")
    summary = {"converter": job.name, "data": job.data, "read": read, "written": written,
               "skipped": dict(skipped.counts), "skipped_examples": skipped.examples,
               "changed": dict(changed.counts), "changed_examples": changed.examples,
               "outputs": {flag: str(p) for flag, p in outs.items()}, "settings": want}
    if extractor is not None:
        summary["images"] = {"folder": job.extract_images_to, "written": extractor.written,
                             "already_there": extractor.present, "rewritten": extractor.rewritten}
    write_json(job.summary_path, summary)
    return summary


def _write_pending(job: Job, extractor: ImageExtractor, pending: dict[int, tuple[str, str]]) -> None:
    """Write the stored images of the sampled records: a second pass over the input, reading
    only those rows' bytes (the sample is known only at the end of the first)."""
    for position, (where, rec) in enumerate(iter_source(job.data, yield_errors=True), start=1):
        if position in pending:
            name, first_where = pending[position]
            image = rec.get("image") if isinstance(rec, dict) else None
            if where != first_where or not is_embedded(image) or extractor.name_for(image) != name:
                raise SicogError(f"{where}: the input changed while it was being converted; run again")
            extractor.write(image, name, where)


#: the Skip reason of each kind of unusable image path (`images.ImageError.kind`)
_IMAGE_SKIPS = {OUTSIDE: "image-outside-folder", NOT_FOUND: "missing-image", BAD_PATH: "bad-image-path",
                NOT_A_FILE: "image-not-a-file"}


def relative_image(rec: dict, folder: str | None, where: str, required: bool = True,
                   allow_outside: bool = False) -> str | None:
    """The record's image path, checked inside `folder` (unless `allow_outside`) and a regular file
    (when a folder is given; `images.image_file`) and made relative to it; Skip("no-image" |
    "bad-image" | "image-outside-folder" | "missing-image" | "bad-image-path" | "image-not-a-file" |
    "unreadable-image") otherwise. A record without the key (or with null) has no image; any other
    value that is not a non-empty path (a list, a number, "") is a bad image, never a text-only
    record."""
    image = rec.get("image")
    if image is None:
        if required:
            raise Skip("no-image", "the record names no image")
        return None
    if not isinstance(image, str) or not image:
        raise Skip("bad-image", f"key 'image': expected a non-empty path string, got {_shown(image)}")
    if folder is None:
        return image
    try:
        path = image_file(resolve_image(folder, image, where, allow_outside=allow_outside), where)
    except ImageError as e:
        raise Skip(_IMAGE_SKIPS.get(e.kind, "unreadable-image"), str(e).split(": ", 1)[-1]) from None
    if Path(image).is_absolute() and not allow_outside:
        return str(path.relative_to(Path(folder).resolve()))
    return image


def _shown(value) -> str:
    """A record's value in a message: its type, and the value when short."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"
