"""Checks on one record that the converters share: its turns and its `<image>` placeholder. Each
refuses a record with a `Skip` naming the reason (counted in the summary), or reports a change it
made to `Context`."""

from __future__ import annotations

from sicog.data.converters.common import Context, Skip
from sicog.data.formats import IMAGE_TOKEN


def turns(rec: dict) -> list[dict]:
    """The record's conversation turns, or Skip("bad-record")."""
    convs = rec.get("conversations") if isinstance(rec, dict) else None
    if not isinstance(convs, list) or not convs or not all(
            isinstance(t, dict) and t.get("from") in ("human", "gpt") and isinstance(t.get("value"), str)
            for t in convs):
        raise Skip("bad-record", "expected 'conversations': a non-empty list of {'from': human|gpt, 'value': str}")
    return convs


def with_one_placeholder(convs: list[dict], has_image: bool, ctx: Context | None = None) -> None:
    """`<image>` once, at the start of the first human turn, for an image record; none otherwise.
    A placeholder moved or added is reported to `ctx` as a change."""
    count = sum(t["value"].count(IMAGE_TOKEN) for t in convs)
    if not has_image:
        if count:
            raise Skip("placeholder-without-image", f"{IMAGE_TOKEN} in a record without an image")
        return
    if count > 1:
        raise Skip("several-placeholders", f"{count} {IMAGE_TOKEN} placeholders (one image per record)")
    if count and IMAGE_TOKEN not in convs[0]["value"]:
        raise Skip("placeholder-not-in-first-turn", f"{IMAGE_TOKEN} is not in the first human turn")
    before = convs[0]["value"]
    first = before.replace(IMAGE_TOKEN, "").strip()
    convs[0]["value"] = f"{IMAGE_TOKEN}\n{first}"
    if ctx is not None and convs[0]["value"] != before:
        ctx.changed("placeholder-added" if not count else "placeholder-moved",
                    f"conversations[0]: {before[:60]!r} -> {convs[0]['value'][:60]!r}")
