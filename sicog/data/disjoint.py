"""`sicog data disjoint A B`: do two data files share a record? (A warm-up set and the pool
sampled after it must not: the model would be asked what it was taught.)

A record's key (--by): `question` (default), its image and its first question with the
placeholder, the step-by-step / short-answer instructions and surrounding spaces taken away (so
a CoT record of LLaVA-CoT and the pool record of the same question match); `image`, its image
alone (a CoD warm-up set and an image pool); `id`, its id. A is held as a set of keys (a
digest each), B is streamed. Prints every shared record of B with file:N (the first --show)
and the record of A it repeats; exit status 0 when they share none, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json

from sicog.data import formats
from sicog.data.records import iter_json_objects

DESCRIPTION = """\
Check that two data files share no record: usage: sicog data disjoint A B [--by question|image|id]

question (default): same image and first question (placeholder and step-by-step / short-answer
instructions ignored); image: same image; id: same id. Exit status 1 when any record is shared.
"""

KEYS = ("question", "image", "id")
_INSTRUCTIONS = (formats.STEP_BY_STEP_INSTRUCTION, formats.SHORT_ANSWER_INSTRUCTION)


def normalized_question(text: str) -> str:
    """A question without the placeholder, the answer-format instructions and extra spaces."""
    text = formats.strip_image_token(text)
    for instruction in _INSTRUCTIONS:
        text = text.replace(instruction, "")
    return " ".join(text.split())


def record_key(rec: object, by: str) -> bytes | None:
    """The digest `rec` is compared by, or None when it has no such key (not counted as shared)."""
    if not isinstance(rec, dict):
        return None
    if by == "id":
        value = rec.get("id")
    elif by == "image":
        value = rec.get("image") or None
    else:
        convs = rec.get("conversations")
        first = next((t.get("value") for t in convs if isinstance(t, dict) and t.get("from") in ("human", "user")),
                     None) if isinstance(convs, list) else None
        value = [rec.get("image") or None, normalized_question(first)] if isinstance(first, str) else None
    if value is None:
        return None
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode()).digest()[:16]


def shared_records(a: str, b: str, by: str) -> tuple[int, int, list[str], int]:
    """(records of A, records of B, the first shared ones of B described, how many are shared)."""
    keys: dict[bytes, int] = {}
    n_a = 0
    for n, rec in iter_json_objects(a):
        n_a += 1
        key = record_key(rec, by)
        if key is not None:
            keys.setdefault(key, n)
    shared, listed, n_b = 0, [], 0
    for n, rec in iter_json_objects(b):
        n_b += 1
        key = record_key(rec, by)
        if key is not None and key in keys:
            shared += 1
            if len(listed) < 1000:
                rid = rec.get("id") if isinstance(rec, dict) else None
                listed.append(f"{b}:{n}: record {rid!r} has the same {by} as {a}:{keys[key]}")
    return n_a, n_b, listed, shared


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A", help="the first data file (e.g. the warm-up set)")
    p.add_argument("b", metavar="B", help="the second data file (e.g. the pool)")
    p.add_argument("--by", choices=KEYS, default="question", help="what makes two records the same (default: "
                   "question: same image and first question)")
    p.add_argument("--show", type=int, default=20, help="shared records listed (all are counted)")


def run(args: argparse.Namespace) -> int:
    n_a, n_b, listed, shared = shared_records(args.a, args.b, args.by)
    print(f"{args.a}: {n_a} record(s); {args.b}: {n_b} record(s); compared by {args.by}")
    if not shared:
        print("disjoint: no record shared")
        return 0
    print(f"shared: {shared} record(s) of {args.b}")
    for line in listed[:args.show]:
        print(f"  {line}")
    if shared > min(args.show, len(listed)):
        print(f"  ... {shared - min(args.show, len(listed))} more")
    return 1
