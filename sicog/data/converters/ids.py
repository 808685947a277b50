"""Unique record ids: a repeated id becomes `<id>#2`, `<id>#3`, ... in input order.

LLaVA-665K names a record after its image, and one COCO image carries several independent
records (a conversation, a detailed description, VQA sets): the id repeats, the records do not.
Every converter therefore gives each input record a unique id before converting it, the first
`<id>` as it was and each repeat the next free `<id>#k` (k from 2). The result depends only on
the input's order, so it is the same on every run and for every converter of the same file: a
warm-up set and a pool drawn from one file by two converters can be told apart by id
(`--exclude`). An id that is already taken by an earlier renaming (a record literally named
`x#2` after two `x`) is renamed in turn (`x#2#2`).
"""

from __future__ import annotations


class UniqueIds:
    """Assigns unique ids, remembering every one given (one dict entry per record)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}  # id given -> the last k tried for it (1: only itself)
        self.renamed = 0

    def assign(self, rid: str) -> str:
        """`rid` when it is new, else the next free `rid#k`."""
        k = self._last.get(rid)
        if k is None:
            self._last[rid] = 1
            return rid
        k += 1
        while f"{rid}#{k}" in self._last:
            k += 1
        self._last[rid] = k
        new = f"{rid}#{k}"
        self._last[new] = 1
        self.renamed += 1
        return new
