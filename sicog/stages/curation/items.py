"""Candidate records in (the output of `sicog sample`), validated, with the comparable part of
each candidate.

What is compared (docs/method.md, "Step 3 — curate"; one rule per record `mode`):

- ``cod``: the Step 5 description (`formats.extract_cod_description`);
- ``cot``: the final answer after "The answer is", else the conclusion step
  (`formats.extract_cot_answer`);
- ``caption``, ``direct``, ``conv``: the whole text (stripped).

A record without `mode` gets its task's step-by-step mode (caption -> cod, reasoning -> cot).
A candidate whose extraction fails is *excluded* from scoring (it can never be chosen) and
counted by kind: ``empty`` (blank text), ``no_description`` (CoD without a Step 5 body),
``no_answer`` (CoT without a final answer or conclusion).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from sicog.data.formats import extract_cod_description, extract_cot_answer
from sicog.data.records import DataError, iter_json_objects
from sicog.utils.shards import owns

TASKS = ("caption", "reasoning")
#: modes each task accepts; the first is the default for records without `mode`
TASK_MODES = {"caption": ("cod", "caption", "conv"), "reasoning": ("cot", "direct", "conv")}
FAILURE_KINDS = ("empty", "no_description", "no_answer")


def _whole_text(text: str) -> str | None:
    return text.strip() or None


#: mode -> (extractor returning None on failure, failure kind for a non-empty text)
EXTRACTORS: dict[str, tuple[Callable[[str], str | None], str]] = {
    "cod": (extract_cod_description, "no_description"),
    "cot": (extract_cot_answer, "no_answer"),
    "caption": (_whole_text, "empty"),
    "direct": (_whole_text, "empty"),
    "conv": (_whole_text, "empty"),
}


@dataclass
class CandidateItem:
    """One candidate record plus the extracted (comparable) text of each candidate."""

    id: str
    where: str  # file:line, for messages
    index: int  # position in the input file (order of the outputs, sharding)
    record: dict
    mode: str
    extracted: list[str | None] = field(default_factory=list)  # None: extraction failed
    failures: list[str | None] = field(default_factory=list)  # failure kind per candidate

    @property
    def candidates(self) -> list[str]:
        return self.record["candidates"]


def extract(text: str, mode: str) -> tuple[str | None, str | None]:
    """(extracted text, None) or (None, failure kind) for one candidate under `mode`."""
    if not text.strip():
        return None, "empty"
    fn, kind = EXTRACTORS[mode]
    value = fn(text)
    value = value.strip() if value else None
    return (value, None) if value else (None, kind)


def _field_error(where: str, key: str, msg: str) -> DataError:
    return DataError(f"{where}: field '{key}': {msg}")


def validate_candidate_record(rec: object, where: str, task: str) -> tuple[str, str]:
    """Check one candidate record's shape; returns (id, mode). Raises DataError naming file:line
    and the field at fault."""
    if not isinstance(rec, dict):
        raise _field_error(where, "<record>", f"expected a JSON object, got {type(rec).__name__}")
    if "id" not in rec:
        raise _field_error(where, "id", "missing")
    if not isinstance(rec["id"], (str, int)) or isinstance(rec["id"], bool) or rec["id"] == "":
        raise _field_error(where, "id", "must be a non-empty string or an integer")
    if "candidates" not in rec:
        raise _field_error(where, "candidates", "missing")
    cands = rec["candidates"]
    if not isinstance(cands, list):
        raise _field_error(where, "candidates", f"must be a list of strings, got {type(cands).__name__}")
    for i, c in enumerate(cands):
        if not isinstance(c, str):
            raise _field_error(where, f"candidates[{i}]", f"must be a string, got {type(c).__name__}")
    if "prompt" not in rec:
        raise _field_error(where, "prompt", "missing (the curated record's human turn)")
    if not isinstance(rec["prompt"], str):
        raise _field_error(where, "prompt", f"must be a string, got {type(rec['prompt']).__name__}")
    image = rec.get("image")
    if image is not None and (not isinstance(image, str) or image == ""):
        raise _field_error(where, "image", "must be a non-empty string or null")
    mode = rec.get("mode")
    if mode is None:
        mode = TASK_MODES[task][0]
    elif not isinstance(mode, str):
        raise _field_error(where, "mode", "must be a string")
    elif mode not in EXTRACTORS:
        raise _field_error(where, "mode", f"unknown mode {mode!r} (one of {', '.join(EXTRACTORS)})")
    elif mode not in TASK_MODES[task]:
        raise _field_error(where, "mode", f"mode {mode!r} does not belong to --task {task} "
                                          f"(accepted: {', '.join(TASK_MODES[task])})")
    corruption = rec.get("corruption")
    if corruption is not None and not isinstance(corruption, str):
        raise _field_error(where, "corruption", "must be a string or null")
    if "meta" in rec and not isinstance(rec["meta"], dict):
        raise _field_error(where, "meta", "must be an object")
    return str(rec["id"]), mode


def load_shard(path: str | os.PathLike, task: str, rank: int = 0,
               world_size: int = 1) -> tuple[list[str], list[CandidateItem]]:
    """(all ids in input order, the items of this rank: index % world_size == rank).

    Every record is validated before any work starts, so that a bad line fails the run with
    nothing written; only this rank's records are kept in memory. Duplicate ids are an error
    (outputs are keyed by id).
    """
    if task not in TASKS:
        raise DataError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    ids: list[str] = []
    items: list[CandidateItem] = []
    seen: dict[str, int] = {}
    for lineno, rec in iter_json_objects(path):
        where = f"{path}:{lineno}"
        item_id, mode = validate_candidate_record(rec, where, task)
        if item_id in seen:
            raise _field_error(where, "id", f"duplicate id {item_id!r} (first at {path}:{seen[item_id]})")
        seen[item_id] = lineno
        index = len(ids)
        ids.append(item_id)
        if owns(index, rank, world_size):
            items.append(CandidateItem(id=item_id, where=where, index=index, record=rec, mode=mode))
    if not ids:
        raise DataError(f"{path}: no candidate records (expected one JSON object per line, as `sicog sample` "
                        "writes them)")
    return ids, items


def load_candidate_items(path: str | os.PathLike, task: str) -> list[CandidateItem]:
    """All items of a candidates file (.jsonl, or a .json list), validated."""
    return load_shard(path, task)[1]


def extract_all(items: list[CandidateItem]) -> None:
    """Fill `extracted` and `failures` of every item."""
    for it in items:
        pairs = [extract(c, it.mode) for c in it.candidates]
        it.extracted = [p[0] for p in pairs]
        it.failures = [p[1] for p in pairs]
