"""What every converter shares: read, convert record by record, count skips, write once.

`convert_file(job, convert)` reads `job.data` (.json list or .jsonl), calls `convert(record,
where)` on a deep copy of each record (the input is never written nor changed in memory), and
writes each output stream atomically in input order, then `<first output>.summary.json` with
the number of records read, written per stream, and skipped per reason with the first examples
(file:line and why). A record the converter cannot use raises `Skip(reason, detail)`; a line
that is not JSON is skipped as `invalid-json`. Nothing is skipped silently.

Outputs are claimed as every command's: apart from the inputs, writable, one writer at a time
(`<first output>.lock`); an output whose summary records the same settings is kept (nothing to
do), other settings are refused unless --overwrite.
"""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sicog.data.formats import IMAGE_TOKEN
from sicog.data.images import resolve_image
from sicog.data.records import DataError, iter_json_objects
from sicog.utils.io import SicogError, file_fingerprint, write_json, write_jsonl
from sicog.utils.lock import as_recorded, check_finished, check_writable, output_lock
from sicog.utils.paths import check_outputs_apart

logger = logging.getLogger(__name__)
EXAMPLES_PER_REASON = 20


class Skip(Exception):
    """A record this converter cannot use: `reason` is the counted key, `detail` says what is wrong."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


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

    @property
    def summary_path(self) -> Path:
        first = Path(next(iter(self.outputs.values())))
        return first.with_name(first.name + ".summary.json")


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


def convert_file(job: Job, convert: Callable[[dict, str], dict[str, list[dict]]]) -> dict:
    """Run `convert` over every record of job.data; returns the summary (see the module docstring)."""
    outs = {flag: Path(p) for flag, p in job.outputs.items()}
    check_outputs_apart({**outs, "the summary": job.summary_path}, {"--data": job.data, **job.inputs})
    for flag, p in outs.items():
        check_writable(p, flag, "file")
    want = as_recorded({"converter": job.name, "data": file_fingerprint(job.data), **job.settings})
    with output_lock(next(iter(outs.values()))):
        done = _finished(job, want)
        if done is not None:
            logger.info("%s: finished with these settings, nothing to do", ", ".join(map(str, outs.values())))
            return done
        streams: dict[str, list[dict]] = {flag: [] for flag in outs}
        seen: dict[str, dict] = {flag: {} for flag in outs}  # ids written, per output: where they came from
        skipped: Counter = Counter()
        examples: dict[str, list[str]] = {}
        read = 0
        from tqdm.auto import tqdm

        records = tqdm(iter_json_objects(job.data, yield_errors=True), unit="rec", desc=job.name,
                       disable=not job.progress, dynamic_ncols=True)
        for lineno, rec in records:
            read += 1
            where = f"{job.data}:{lineno}"
            try:
                if isinstance(rec, DataError):
                    raise Skip("invalid-json", str(rec).split(": ", 1)[-1])
                converted = convert(copy.deepcopy(rec), where)
                for flag, recs in converted.items():
                    for r in recs:
                        if r.get("id") in seen[flag]:
                            raise Skip("duplicate-id", f"id {r['id']!r} repeats {seen[flag][r['id']]}")
                for flag, recs in converted.items():
                    seen[flag].update((r.get("id"), where) for r in recs)
                    streams[flag].extend(recs)
            except Skip as s:
                skipped[s.reason] += 1
                if len(examples.setdefault(s.reason, [])) < EXAMPLES_PER_REASON:
                    examples[s.reason].append(f"{where}: {s.detail}")
        if not any(streams.values()):
            raise SicogError(f"{job.data}: no record could be converted ({dict(skipped) or 'empty file'}); "
                             f"is this a {job.name} file?")
        for flag, path in outs.items():
            write_jsonl(path, streams[flag])
        summary = {"converter": job.name, "data": job.data, "read": read,
                   "written": {flag: len(recs) for flag, recs in streams.items()},
                   "skipped": dict(skipped), "skipped_examples": examples,
                   "outputs": {flag: str(p) for flag, p in outs.items()}, "settings": want}
        write_json(job.summary_path, summary)
    for reason, n in skipped.items():
        logger.warning("%s: skipped %d record(s): %s (first: %s)", job.name, n, reason, examples[reason][0])
    logger.info("%s: read %d record(s), wrote %s, skipped %d (%s)", job.name, read,
                ", ".join(f"{len(r)} to {outs[f]}" for f, r in streams.items()), sum(skipped.values()),
                job.summary_path)
    return summary


# ---------------------------------------------------------------- checks shared by the converters
def turns(rec: dict) -> list[dict]:
    """The record's conversation turns, or Skip("bad-record")."""
    convs = rec.get("conversations") if isinstance(rec, dict) else None
    if not isinstance(convs, list) or not convs or not all(
            isinstance(t, dict) and t.get("from") in ("human", "gpt") and isinstance(t.get("value"), str)
            for t in convs):
        raise Skip("bad-record", "expected 'conversations': a non-empty list of {'from': human|gpt, 'value': str}")
    return convs


def relative_image(rec: dict, folder: str | None, where: str, required: bool = True) -> str | None:
    """The record's image path, checked inside `folder` and present (when a folder is given) and
    made relative to it; Skip("no-image" | "image-outside-folder" | "missing-image") otherwise."""
    image = rec.get("image")
    if not isinstance(image, str) or not image:
        if required:
            raise Skip("no-image", "the record names no image")
        return None
    if folder is None:
        return image
    try:
        path = resolve_image(folder, image, where, allow_outside=False)
    except DataError as e:
        raise Skip("image-outside-folder", str(e).split(": ", 1)[-1]) from None
    if not path.is_file():
        raise Skip("missing-image", f"{image} is not in {folder}")
    return str(path.relative_to(Path(folder).resolve())) if Path(image).is_absolute() else image


def with_one_placeholder(convs: list[dict], has_image: bool) -> None:
    """`<image>` once, at the start of the first human turn, for an image record; none otherwise."""
    count = sum(t["value"].count(IMAGE_TOKEN) for t in convs)
    if not has_image:
        if count:
            raise Skip("placeholder-without-image", f"{IMAGE_TOKEN} in a record without an image")
        return
    if count > 1:
        raise Skip("several-placeholders", f"{count} {IMAGE_TOKEN} placeholders (one image per record)")
    first = convs[0]["value"].replace(IMAGE_TOKEN, "").strip() if count else convs[0]["value"].strip()
    if count and IMAGE_TOKEN not in convs[0]["value"]:
        raise Skip("placeholder-not-in-first-turn", f"{IMAGE_TOKEN} is not in the first human turn")
    convs[0]["value"] = f"{IMAGE_TOKEN}\n{first}"
