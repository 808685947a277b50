"""LLaVA-style records: reading JSON / JSONL with errors that name file:line and key.

Training record (docs/architecture.md, "Data flow 1")::

    {"id": "img-0001", "image": "images/0001.png",
     "conversations": [{"from": "human", "value": "<image>\\nDescribe ..."},
                       {"from": "gpt", "value": "Step 1: ..."}]}

Text-only records omit `image`. Unlabeled records (inputs of `sicog sample`) may stop after the
human turn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

from sicog.utils.io import SicogError

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
         "system": "system"}


class DataError(SicogError):
    """A data file is malformed; the message names file:line and the key at fault."""


@dataclass(frozen=True)
class Located:
    """A record plus where it came from, so later errors can still name file:line."""

    record: dict
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def iter_json_objects(path: str | os.PathLike, yield_errors: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object) from a JSON Lines file, or (index+1, item) from a JSON list.

    The format is told from the content (`sicog.data.sources.sniff_format`: a first `[` is a
    list), not from the suffix, and both are streamed. JSON Lines is read by
    `sicog.utils.io.iter_jsonl`: blank lines are skipped, a malformed line raises DataError
    naming file:line; with `yield_errors` it yields (line, DataError) instead, so a caller can
    skip and count it (a syntax error inside a JSON list always raises: nothing after it can be
    located).
    """
    from sicog.data.sources import iter_json_records

    yield from iter_json_records(path, yield_errors=yield_errors)


def _require(cond: bool, where: str, key: str, msg: str) -> None:
    if not cond:
        raise DataError(f"{where}: key '{key}': {msg}")


def validate_training_record(rec: Any, where: str, require_answer: bool = True) -> dict:
    """Check one LLaVA record's shape; raise DataError naming `where` (file:line) and the key.

    With require_answer=False a record may end after its human turn (unlabeled input).
    """
    _require(isinstance(rec, dict), where, "<record>", f"expected a JSON object, got {type(rec).__name__}")
    if "id" in rec:
        _require(isinstance(rec["id"], (str, int)), where, "id", "must be a string or integer")
    if "image" in rec and rec["image"] is not None:
        _require(isinstance(rec["image"], str) and rec["image"] != "", where, "image",
                 "must be a non-empty string (a path relative to the image folder)")
    _require("conversations" in rec, where, "conversations", "missing")
    convs = rec["conversations"]
    _require(isinstance(convs, list) and len(convs) > 0, where, "conversations", "must be a non-empty list")
    for i, turn in enumerate(convs):
        key = f"conversations[{i}]"
        _require(isinstance(turn, dict), where, key, "must be an object with 'from' and 'value'")
        _require(turn.get("from") in ROLES, where, f"{key}.from",
                 f"must be one of {sorted(ROLES)}, got {turn.get('from')!r}")
        _require(isinstance(turn.get("value"), str), where, f"{key}.value", "must be a string")
    roles = [ROLES[t["from"]] for t in convs if ROLES[t["from"]] != "system"]
    _require(len(roles) > 0 and roles[0] == "user", where, "conversations", "must start with a human turn")
    for i in range(1, len(roles)):
        _require(roles[i] != roles[i - 1], where, "conversations", "human and gpt turns must alternate")
    if require_answer:
        _require(roles[-1] == "assistant", where, "conversations", "must end with a gpt turn")
    return rec


def read_records(path: str | os.PathLike, require_answer: bool = True) -> list[Located]:
    """Read and validate all training records of a .json or .jsonl file."""
    out = []
    for lineno, obj in iter_json_objects(path):
        where = f"{path}:{lineno}"
        out.append(Located(validate_training_record(obj, where, require_answer), str(path), lineno))
    return out


def record_id(rec: dict, fallback: int | str) -> str:
    """A record's id as a string; records without one get a stable id from their position."""
    return str(rec["id"]) if "id" in rec else f"record-{fallback}"


def first_user_text(rec: dict) -> str:
    """The text of the first human turn (with any `<image>` placeholder still in it)."""
    for turn in rec["conversations"]:
        if ROLES[turn["from"]] == "user":
            return turn["value"]
    raise DataError(f"record {rec.get('id')!r} has no human turn")
