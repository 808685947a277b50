"""The words of the synthetic world: how facts are phrased, and how phrases are read back.

Every text of the world (captions, CoD, CoT, questions) is built from these words, so caption
scoring and parse-based consistency can read a text back with `extract_object_mentions`.
Stable contract (sicog.eval reads it):

- shapes: the canonical names of `scenes.ALL_SHAPES`, plural with "s";
- colours: the canonical names of `scenes.PALETTE` (the word in texts is the canonical name);
- sizes: `SIZE_WORDS` maps canonical size -> the words used ("large"/"big", "small"/"little");
- positions: `CELL_PHRASES` maps a cell name -> the phrases used ("in the top left corner", ...);
- numbers: `NUMBER_WORDS` (prose) and digits (short answers).
"""

from __future__ import annotations

import random
import re

from sicog.demo.world.scenes import ALL_SHAPES, CELL_NAMES, PALETTE, Scene, SceneObject

SIZE_WORDS = {"large": ("large", "big"), "small": ("small", "little")}
CELL_PHRASES = {
    "top left": ("in the top left corner", "at the top left"),
    "top center": ("at the top center", "in the top middle"),
    "top right": ("in the top right corner", "at the top right"),
    "middle left": ("on the middle left", "on the left side"),
    "center": ("in the center", "in the middle"),
    "middle right": ("on the middle right", "on the right side"),
    "bottom left": ("in the bottom left corner", "at the bottom left"),
    "bottom center": ("at the bottom center", "in the bottom middle"),
    "bottom right": ("in the bottom right corner", "at the bottom right"),
}
assert set(CELL_PHRASES) == set(CELL_NAMES)
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

_SIZE_OF_WORD = {w: size for size, words in SIZE_WORDS.items() for w in words}
_CELL_OF_PHRASE = {p: cell for cell, phrases in CELL_PHRASES.items() for p in phrases}
_MENTION_RE = re.compile(
    r"\b(?:(?P<size>" + "|".join(_SIZE_OF_WORD) + r")\s+)?"
    r"(?:(?P<colour>" + "|".join(PALETTE) + r")\s+)?"
    r"(?P<shape>" + "|".join(ALL_SHAPES) + r")(?P<plural>s)?\b"
    r"(?:\s+(?:is\s+|sits\s+|lies\s+)?(?P<cell>" + "|".join(sorted(_CELL_OF_PHRASE, key=len, reverse=True)) + r"))?",
    re.IGNORECASE,
)


def plural(shape: str) -> str:
    """The plural of a shape word."""
    return f"{shape}s"


def number_word(n: int) -> str:
    """A count in prose ("no", "one", ..., "nine"; larger numbers as digits)."""
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def article(word: str) -> str:
    """"a" or "an" before `word`."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def with_article(phrase: str) -> str:
    """`phrase` preceded by its indefinite article."""
    return f"{article(phrase)} {phrase}"


def size_word(size: str, rng: random.Random) -> str:
    """One of the words for a size."""
    return rng.choice(SIZE_WORDS[size])


def cell_phrase(cell: str, rng: random.Random | None = None) -> str:
    """A prepositional phrase for a cell ("in the top left corner"); the first one without rng."""
    phrases = CELL_PHRASES[cell]
    return rng.choice(phrases) if rng is not None else phrases[0]


def object_phrase(obj: SceneObject, rng: random.Random, size: bool = True, colour: bool = True) -> str:
    """An object's noun phrase without article: "large red circle", "red circle", "circle"."""
    parts = []
    if size:
        parts.append(size_word(obj.size, rng))
    if colour:
        parts.append(obj.colour)
    parts.append(obj.shape)
    return " ".join(parts)


def join_list(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def reading_order(scene: Scene) -> list[SceneObject]:
    """Objects row by row, left to right (how the texts enumerate them)."""
    return sorted(scene.objects, key=lambda o: (o.row, o.col))


def salience_order(scene: Scene) -> list[SceneObject]:
    """Objects from most to least salient: large first, then least hidden, then front-most."""
    return sorted(scene.objects, key=lambda o: (o.size != "large", -o.visible_fraction, -o.z))


def unique_ref(scene: Scene, obj: SceneObject, rng: random.Random, avoid: str | None = None,
               allow_cell: bool = True) -> str | None:
    """The shortest definite description that picks out `obj` alone ("the red circle", ...).

    `avoid` names an attribute the description must not use ("colour", "shape", "size"), e.g.
    when the question asks for it. Returns None when no description is unique.
    """
    combos = [("shape",), ("colour", "shape"), ("size", "shape"), ("size", "colour", "shape"),
              ("colour",), ("size", "colour")]
    for attrs in combos:
        if avoid in attrs:
            continue
        same = [o for o in scene.objects if all(getattr(o, a) == getattr(obj, a) for a in attrs)]
        if len(same) == 1:
            words = [size_word(obj.size, rng) if a == "size" else getattr(obj, a) for a in attrs]
            if "shape" not in attrs:  # "the red object" when the question asks for the shape
                words.append("object" if avoid == "shape" else "shape")
            return "the " + " ".join(words)
    if allow_cell:
        noun = "object" if avoid == "shape" else obj.shape
        return f"the {noun} {cell_phrase(obj.cell)}"
    return None


def extract_object_mentions(text: str) -> list[dict]:
    """The object mentions of a world text, in order: dicts with `shape` (canonical), `colour`,
    `size` (canonical, or None when not stated), `cell` (when a position phrase follows
    directly, else None) and `plural` (bool).

    Meant for caption scoring and parse-based consistency: "a large red circle in the top left
    corner" -> {"shape": "circle", "colour": "red", "size": "large", "cell": "top left", ...}.
    """
    out = []
    for m in _MENTION_RE.finditer(text):
        size = m.group("size")
        cell = m.group("cell")
        out.append({
            "shape": m.group("shape").lower(),
            "colour": m.group("colour").lower() if m.group("colour") else None,
            "size": _SIZE_OF_WORD[size.lower()] if size else None,
            "cell": _CELL_OF_PHRASE[cell.lower()] if cell else None,
            "plural": bool(m.group("plural")),
        })
    return out
