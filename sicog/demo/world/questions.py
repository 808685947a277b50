"""Questions about a scene, answered from its scene graph, with structured-CoT and short answers.

Kinds (the benchmark's `category`): count, attribute, spatial, comparison, existence. Each
kind has several subtypes (the benchmark's `l2-category`); the ones in `MCQ_SUBTYPES` have an
answer space of at least four options and make multiple-choice items.

A `Question` holds the question text (no instruction), the short answer in canonical words
(digits for counts, "yes"/"no", a colour, shape, cell name, "left"/"right"/"above"/"below", or
an object phrase like "red circle"), the four CoT step bodies, and `options` (four answers,
one of them correct) or None. Prompts and answers are laid out only through
`sicog.data.formats` (see sicog.demo.world.question_parts for the layouts).
"""

from __future__ import annotations

import random

from sicog.demo.world import vocab as V
from sicog.demo.world.question_parts import (  # noqa: F401  (re-exported: the questions' public API)
    DIRECTIONS,
    KINDS,
    LETTERS,
    Question,
    _cap,
    _dir_phrase,
    _direction,
    _listing,
    _number_options,
    _pair,
    _pick_options,
    cot_answer,
    cot_prompt,
    mcq_layout,
    short_prompt,
)
from sicog.demo.world.scenes import CELL_NAMES, Scene, SceneConfig, count_matching


# ------------------------------------------------------------------ count
def q_count_all(scene, rng, cfg):
    n = len(scene.objects)
    text = rng.choice(("How many shapes are there in the image?", "How many objects are in the image?",
                       "How many shapes can you see?"))
    return Question(
        "count", "count_all", text, str(n),
        rng.choice(("The question asks for the total number of shapes.", "I need to count all the shapes.")),
        f"The image contains {_listing(scene, rng)}.",
        rng.choice((f"Counting each shape once gives {n}.", f"Counting them one by one gives {n} in total.")),
        f"There {'is' if n == 1 else 'are'} {V.number_word(n)} shape{'' if n == 1 else 's'}.",
        _number_options(n, rng, low=1))


def q_count_class(scene, rng, cfg):
    mode = rng.choice(("colour", "shape", "both"))
    colour = rng.choice(cfg.colours) if mode != "shape" else None
    shape = rng.choice(cfg.shapes) if mode != "colour" else None
    n = count_matching(scene, shape=shape, colour=colour)
    cls = " ".join(w for w in (colour, V.plural(shape) if shape else "shapes") if w)
    text = rng.choice((f"How many {cls} are there?", f"How many {cls} are in the image?"))
    matching = [o for o in V.reading_order(scene) if (shape is None or o.shape == shape)
                and (colour is None or o.colour == colour)]
    visual = (f"The {cls} are {_listing(scene, rng, matching)}." if len(matching) > 1 else
              f"The only one is {_listing(scene, rng, matching)}." if matching else
              f"The image contains {_listing(scene, rng)}; none of them matches.")
    return Question(
        "count", "count_class", text, str(n),
        f"The question asks how many {cls} the image contains.",
        visual,
        f"Counting only the {cls} gives {n}.",
        f"There {'is' if n == 1 else 'are'} {V.number_word(n)} {cls if n != 1 else cls[:-1]}.",
        _number_options(n, rng))


# ------------------------------------------------------------------ attribute
def q_colour(scene, rng, cfg):
    o = rng.choice(scene.objects)
    ref = V.unique_ref(scene, o, rng, avoid="colour")
    text = rng.choice((f"What color is {ref}?", f"Which color does {ref} have?"))
    return Question(
        "attribute", "colour", text, o.colour,
        f"The question asks for the color of {ref}.",
        f"{_cap(ref)} is {V.with_article(V.object_phrase(o, rng))} {V.cell_phrase(o.cell, rng)}.",
        f"Its fill is clearly {o.colour}.",
        f"{_cap(ref)} is {o.colour}.",
        _pick_options(o.colour, cfg.colours, rng))


def q_shape(scene, rng, cfg):
    o = rng.choice(scene.objects)
    ref = V.unique_ref(scene, o, rng, avoid="shape")
    text = rng.choice((f"What shape is {ref}?", f"Which shape is {ref}?"))
    return Question(
        "attribute", "shape", text, o.shape,
        f"The question asks for the shape of {ref}.",
        f"{_cap(ref)} is {V.with_article(V.object_phrase(o, rng))} {V.cell_phrase(o.cell, rng)}.",
        f"Its outline is that of a {o.shape}.",
        f"{_cap(ref)} is a {o.shape}.",
        _pick_options(o.shape, cfg.shapes, rng))


def q_size(scene, rng, cfg):
    o = rng.choice(scene.objects)
    ref = V.unique_ref(scene, o, rng, avoid="size")
    text = rng.choice((f"Is {ref} large or small?", f"What size is {ref}?"))
    return Question(
        "attribute", "size", text, o.size,
        f"The question asks for the size of {ref}.",
        f"{_cap(ref)} is {V.with_article(V.object_phrase(o, rng))}.",
        f"Compared with the grid cell it sits in, it is {o.size}.",
        f"{_cap(ref)} is {o.size}.")


# ------------------------------------------------------------------ spatial
def q_where(scene, rng, cfg):
    o = rng.choice(scene.objects)
    ref = V.unique_ref(scene, o, rng, allow_cell=False)
    if ref is None:
        return None
    text = rng.choice((f"Where is {ref} located?", f"In which part of the image is {ref}?"))
    return Question(
        "spatial", "where", text, o.cell,
        f"The question asks where {ref} is in the image.",
        f"{_cap(ref)} is {V.cell_phrase(o.cell, rng)}.",
        f"Its center lies in the {o.cell} cell of a three by three grid.",
        f"{_cap(ref)} is {V.cell_phrase(o.cell)}.",
        _pick_options(o.cell, CELL_NAMES, rng))


def q_direction(scene, rng, cfg):
    found = _pair(scene, rng, aligned=True)
    if not found:
        return None
    a, b, ra, rb = found
    d = _direction(a, b)
    same = "row" if d in ("left", "right") else "column"
    return Question(
        "spatial", "direction", f"Where is {ra} relative to {rb}?", d,
        f"The question asks for the position of {ra} relative to {rb}.",
        f"{_cap(ra)} is {V.cell_phrase(a.cell, rng)} and {rb} is {V.cell_phrase(b.cell, rng)}.",
        f"Both are in the same {same}, so {ra} is {_dir_phrase(d)} {rb}.",
        f"{_cap(ra)} is {_dir_phrase(d)} {rb}.",
        list(DIRECTIONS))


def q_relation_yesno(scene, rng, cfg):
    found = _pair(scene, rng, aligned=False)
    if not found:
        return None
    a, b, ra, rb = found
    d = rng.choice(DIRECTIONS)
    truth = {"left": a.col < b.col, "right": a.col > b.col, "above": a.row < b.row, "below": a.row > b.row}[d]
    ans = "yes" if truth else "no"
    return Question(
        "spatial", "relation_yesno", f"Is {ra} {_dir_phrase(d)} {rb}?", ans,
        f"The question asks whether {ra} is {_dir_phrase(d)} {rb}.",
        f"{_cap(ra)} is {V.cell_phrase(a.cell, rng)} and {rb} is {V.cell_phrase(b.cell, rng)}.",
        f"Comparing their rows and columns, {ra} is {'' if truth else 'not '}{_dir_phrase(d)} {rb}.",
        f"{_cap(ra)} is {'' if truth else 'not '}{_dir_phrase(d)} {rb}.")


# ------------------------------------------------------------------ comparison
def _class_pair(scene, rng, cfg):
    if rng.random() < 0.5:
        a, b = rng.sample(list(cfg.colours), 2)
        return (f"{a} shapes", count_matching(scene, colour=a)), (f"{b} shapes", count_matching(scene, colour=b))
    a, b = rng.sample(list(cfg.shapes), 2)
    return (V.plural(a), count_matching(scene, shape=a)), (V.plural(b), count_matching(scene, shape=b))


def _n_of(k: int, cls: str) -> str:
    """"no red shapes", "one red shape", "two circles"."""
    return f"{V.number_word(k)} {cls[:-1] if k == 1 else cls}"


def q_more(scene, rng, cfg):
    (na, ca), (nb, cb) = _class_pair(scene, rng, cfg)
    ans = "yes" if ca > cb else "no"
    return Question(
        "comparison", "more", f"Are there more {na} than {nb}?", ans,
        f"The question asks whether the {na} outnumber the {nb}.",
        f"The image has {_n_of(ca, na)} and {_n_of(cb, nb)}.",
        f"{ca} is {'more' if ca > cb else 'not more'} than {cb}.",
        f"There are {'more' if ca > cb else 'not more'} {na} than {nb}.")


def q_more_by(scene, rng, cfg):
    (na, ca), (nb, cb) = _class_pair(scene, rng, cfg)
    if ca == cb:
        return None
    if ca < cb:
        (na, ca), (nb, cb) = (nb, cb), (na, ca)
    diff = ca - cb
    return Question(
        "comparison", "more_by", f"How many more {na} than {nb} are there?", str(diff),
        f"The question asks for the difference between the number of {na} and {nb}.",
        f"The image has {_n_of(ca, na)} and {_n_of(cb, nb)}.",
        f"{ca} minus {cb} is {diff}.",
        f"There {'is' if diff == 1 else 'are'} {V.number_word(diff)} more.",
        _number_options(diff, rng, low=1))


def q_most_colour(scene, rng, cfg):
    counts = {c: count_matching(scene, colour=c) for c in cfg.colours}
    top = max(counts.values())
    winners = [c for c, k in counts.items() if k == top]
    if len(winners) != 1 or len(scene.objects) < 2:
        return None
    c = winners[0]
    present = [f"{V.number_word(k)} {x}" for x, k in counts.items() if k]
    return Question(
        "comparison", "most_colour", rng.choice(("Which color is the most common among the shapes?",
                                                 "Which color appears most often?")), c,
        "The question asks which color the most shapes have.",
        f"By color, the shapes are {V.join_list(present)}.",
        f"{_cap(c)} has the highest count, {V.number_word(top)}.",
        f"Most shapes are {c}.",
        _pick_options(c, cfg.colours, rng))


def q_larger(scene, rng, cfg):
    pairs = [(a, b) for a in scene.objects for b in scene.objects if a.size == "large" and b.size == "small"]
    rng.shuffle(pairs)
    for a, b in pairs:
        ra, rb = V.unique_ref(scene, a, rng, avoid="size"), V.unique_ref(scene, b, rng, avoid="size")
        first, second = (ra, rb) if rng.random() < 0.5 else (rb, ra)
        answer = ra[len("the "):]
        return Question(
            "comparison", "larger", f"Which is larger, {first} or {second}?", answer,
            "The question asks which shape of the pair is larger.",
            f"{_cap(ra)} is large and {rb} is small.",
            f"A large shape is bigger than a small one, so {ra} is larger.",
            f"{_cap(ra)} is larger.")
    return None


# ------------------------------------------------------------------ existence
def _combo_present(scene, colour, shape) -> bool:
    return count_matching(scene, shape=shape, colour=colour) > 0


def q_exists(scene, rng, cfg):
    if rng.random() < 0.5:
        o = rng.choice(scene.objects)
        colour, shape = o.colour, o.shape
    else:
        colour, shape = rng.choice(cfg.colours), rng.choice(cfg.shapes)
    there = _combo_present(scene, colour, shape)
    thing = f"{colour} {shape}"
    text = rng.choice((f"Is there {V.with_article(thing)} in the image?", f"Does the image contain {V.with_article(thing)}?"))
    return Question(
        "existence", "exists", text, "yes" if there else "no",
        f"The question asks whether {V.with_article(thing)} is present.",
        f"The image contains {_listing(scene, rng)}.",
        f"{'One' if there else 'None'} of these shapes is {V.with_article(thing)}.",
        f"There is {'' if there else 'no '}{thing} in the image.")


def q_which_present(scene, rng, cfg, present: bool = True):
    combos_present = sorted({f"{o.colour} {o.shape}" for o in scene.objects})
    absent = [f"{c} {s}" for c in cfg.colours for s in cfg.shapes if f"{c} {s}" not in combos_present]
    if present:
        answer = rng.choice(combos_present)
        others = rng.sample(absent, 3)
        text = rng.choice(("Which of these shapes appears in the image?", "Which of these is in the image?"))
    else:
        if len(combos_present) < 3:
            return None
        answer = rng.choice(absent)
        others = rng.sample(combos_present, 3)
        text = rng.choice(("Which of these shapes is not in the image?", "Which of these is missing from the image?"))
    return Question(
        "existence", "which_present" if present else "which_absent", text, answer,
        f"The question asks which listed shape is {'present in' if present else 'missing from'} the image.",
        f"The image contains {_listing(scene, rng)}.",
        f"Of the listed shapes, only the {answer} is {'present' if present else 'missing'}.",
        f"The {answer} is {'in' if present else 'not in'} the image.",
        [answer] + others)


GENERATORS = {
    "count": (q_count_all, q_count_class),
    "attribute": (q_colour, q_shape, q_size),
    "spatial": (q_where, q_direction, q_relation_yesno),
    "comparison": (q_more, q_more_by, q_most_colour, q_larger),
    "existence": (q_exists, q_which_present, lambda s, r, c: q_which_present(s, r, c, present=False)),
}
#: subtypes whose questions carry four options
MCQ_SUBTYPES = frozenset({"count_all", "count_class", "colour", "shape", "where", "direction",
                          "more_by", "most_colour", "which_present", "which_absent"})


def make_question(scene: Scene, rng: random.Random, kind: str, cfg: SceneConfig | None = None,
                  mcq: bool = False) -> Question | None:
    """One question of `kind` (a random applicable subtype among `cfg.question_subtypes`, if set); with
    mcq=True only four-option ones."""
    cfg = cfg or SceneConfig()
    gens = list(GENERATORS[kind])
    rng.shuffle(gens)
    for gen in gens:
        q = gen(scene, rng, cfg)
        if q is not None and (not mcq or q.options) and (not cfg.question_subtypes or q.subtype in cfg.question_subtypes):
            return q
    return None


def make_questions(scene: Scene, rng: random.Random, k: int, cfg: SceneConfig | None = None,
                   mcq: bool = False, first_kind: int | None = None) -> list[Question]:
    """Up to k questions of distinct texts, cycling through the kinds (from `first_kind`, or random)."""
    kinds = (cfg or SceneConfig()).question_kinds
    start = rng.randrange(len(kinds)) if first_kind is None else first_kind
    out: list[Question] = []
    seen = set()
    # a world with one or two kinds repeats a text more often: give it as many tries as five kinds get
    for step in range(max(len(kinds) * 3, 15)):
        if len(out) >= k:
            break
        q = make_question(scene, rng, kinds[(start + step) % len(kinds)], cfg, mcq)
        if q is not None and q.text not in seen:
            seen.add(q.text)
            out.append(q)
    return out
