"""The parts questions are made of: the `Question` record, option pickers, object listings,
directions between objects, and the prompt / answer layouts (short, CoT, multiple choice).

Prompts and answers are laid out only through `sicog.data.formats` (`SHORT_ANSWER_INSTRUCTION`,
`to_cot_question`, `format_cot`, `answer_sentence`). `sicog.demo.world.questions` builds the
questions themselves and re-exports these names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sicog.data import formats
from sicog.demo.world import vocab as V
from sicog.demo.world.scenes import QUESTION_KINDS as KINDS  # noqa: F401  (re-exported)
from sicog.demo.world.scenes import Scene

DIRECTIONS = ("left", "right", "above", "below")
LETTERS = ("A", "B", "C", "D")


@dataclass
class Question:
    """A question with its truth and CoT explanation (see module docstring)."""

    kind: str
    subtype: str
    text: str
    answer: str
    objective: str
    visual: str
    reasoning: str
    summary: str
    options: list[str] | None = None


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _listing(scene: Scene, rng: random.Random, objs=None, cells: bool = False) -> str:
    """"a large red circle, a small blue square and ..." (with positions when `cells`)."""
    objs = V.reading_order(scene) if objs is None else objs
    return V.join_list([V.with_article(V.object_phrase(o, rng)) + (f" {V.cell_phrase(o.cell, rng)}" if cells else "")
                        for o in objs])


def _number_options(answer: int, rng: random.Random, low: int = 0) -> list[str]:
    near = sorted((x for x in range(low, answer + 5) if x != answer), key=lambda x: (abs(x - answer), x))
    return [str(answer)] + [str(x) for x in rng.sample(near[:5], 3)]


def _pick_options(answer: str, pool, rng: random.Random) -> list[str]:
    others = [p for p in pool if p != answer]
    return [answer] + rng.sample(others, 3)


def _direction(a, b) -> str | None:
    if a.row == b.row:
        return "left" if a.col < b.col else "right"
    if a.col == b.col:
        return "above" if a.row < b.row else "below"
    return None


def _dir_phrase(d: str) -> str:
    return {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}[d]


def _pair(scene, rng, aligned: bool):
    pairs = [(a, b) for a in scene.objects for b in scene.objects
             if a.id != b.id and (not aligned or _direction(a, b))]
    rng.shuffle(pairs)
    for a, b in pairs:
        ra, rb = V.unique_ref(scene, a, rng, allow_cell=False), V.unique_ref(scene, b, rng, allow_cell=False)
        if ra and rb:
            return a, b, ra, rb
    return None


# ------------------------------------------------------------------ layouts
def short_prompt(q: Question) -> str:
    """The short-answer user text: question + `SHORT_ANSWER_INSTRUCTION` (LLaVA-665K style)."""
    return f"{q.text}\n{formats.SHORT_ANSWER_INSTRUCTION}"


def cot_prompt(q: Question) -> str:
    """The step-by-step user text (`to_cot_question` of the short-answer prompt)."""
    return formats.to_cot_question(short_prompt(q))


def mcq_layout(q: Question, rng: random.Random) -> tuple[dict[str, str], str]:
    """The options in a random order as {letter: text}, and the correct letter."""
    if not q.options:
        raise ValueError(f"question {q.text!r} has no options")
    opts = list(q.options)
    rng.shuffle(opts)
    letters = dict(zip(LETTERS, opts))
    return letters, LETTERS[opts.index(q.answer)]


def cot_answer(q: Question, mcq_options: dict[str, str] | None = None, mcq_answer: str | None = None) -> str:
    """The four-step structured-CoT answer; for a multiple-choice layout it concludes with the letter."""
    if mcq_options is None:
        return formats.format_cot(q.objective, q.visual, q.reasoning,
                                  f"{q.summary} {formats.answer_sentence(q.answer)}")
    return formats.format_cot(
        q.objective, q.visual,
        f"{q.reasoning} That is option {mcq_answer}, {mcq_options[mcq_answer]}.",
        f"{q.summary} {formats.answer_sentence(mcq_answer)}")
