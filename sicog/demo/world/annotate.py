"""Texts about a scene, generated from its scene graph: brief captions and Chain-of-Description.

Every sentence states only facts of the scene graph (tests check this). Wording is drawn from a
seeded `random.Random` (several templates per step, several phrasings per fact, see
`sicog.demo.world.vocab`), so the same scene and seed give the same text and different scenes get
different sentence shapes. Formats come from `sicog.data.formats` only.

- `brief_caption`: an alt-text-like caption that is true but deliberately incomplete (one or two
  shapes, or only the dominant colour, or only the count) - what the base model is aligned on.
- `cod_steps` / `cod_text`: the five CoD step bodies / the full CoD answer (salient content,
  attributes, relations, peripheral content, cohesive paragraph); `direct_description` is the
  Step 5 paragraph alone.
- questions with structured-CoT and short answers: `sicog.demo.world.questions`.
- `scene_text_corpus`: texts for training the tiny tokenizer / LM.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Iterator

from sicog.data import formats
from sicog.demo.world import vocab as V
from sicog.demo.world.scenes import Scene, SceneConfig, count_matching, scene_for

_NOUNS = ("shapes", "objects", "geometric shapes")


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _count_np(n: int, rng: random.Random) -> str:
    """"three shapes" / "a single shape"."""
    if n == 1:
        return rng.choice(("a single shape", "one shape", "a single object"))
    return f"{V.number_word(n)} {rng.choice(_NOUNS)}"


def dominant_colours(scene: Scene) -> list[str]:
    """The colours with the highest object count (several on a tie), in palette order."""
    counts = Counter(o.colour for o in scene.objects)
    top = max(counts.values())
    return sorted(c for c, k in counts.items() if k == top)


# ------------------------------------------------------------------ brief captions
def brief_caption(scene: Scene, rng: random.Random) -> str:
    """A short, true, deliberately incomplete caption (alt-text style)."""
    objs = V.salience_order(scene)
    n = len(objs)
    bg = scene.background
    kinds = ["some", "count", "colour", "one_where"]
    kind = rng.choice(kinds)
    if kind == "some":
        k = min(n, rng.choice((1, 2)))
        nps = [V.with_article(V.object_phrase(o, rng, size=rng.random() < 0.5)) for o in objs[:k]]
        text = V.join_list(nps)
        return _cap(rng.choice((f"{text}.", f"{text} on a {bg} background.", f"A picture with {text}.")))
    if kind == "count":
        return _cap(rng.choice((f"{_count_np(n, rng)}.", f"{_count_np(n, rng)} on a {bg} background.")))
    if kind == "colour":
        colour = rng.choice(dominant_colours(scene))
        if n == 1:
            return _cap(f"a {colour} shape on a {bg} background.")
        if all(o.colour == colour for o in objs):
            return _cap(rng.choice((f"{colour} shapes.", f"only {colour} shapes on a {bg} background.")))
        if 2 * count_matching(scene, colour=colour) > n:
            return _cap(rng.choice((f"mostly {colour} shapes.", f"mostly {colour} shapes on a {bg} background.")))
        return _cap(rng.choice((f"some {colour} shapes among others.", f"some {colour} shapes on a {bg} background.")))
    o = objs[0]
    return _cap(f"{V.with_article(V.object_phrase(o, rng))} {V.cell_phrase(o.cell, rng)}.")


# ------------------------------------------------------------------ Chain-of-Description
def _step1_salient(scene: Scene, rng: random.Random) -> str:
    objs = V.salience_order(scene)
    n = len(objs)
    lead = [V.with_article(V.object_phrase(o, rng)) for o in objs[: min(2, n)]]
    bg = scene.background
    if n == 1:
        return rng.choice((
            f"The image shows a single shape on a {bg} background: {lead[0]}.",
            f"The key element is {lead[0]}, alone on a {bg} background.",
        ))
    return rng.choice((
        f"The image shows {_count_np(n, rng)} on a {bg} background. The most prominent is {lead[0]}.",
        f"{_cap(_count_np(n, rng))} stand out against a {bg} background, most notably {V.join_list(lead)}.",
        f"The key elements are {_count_np(n, rng)}, led by {lead[0]}.",
    ))


def _grouped_phrases(scene: Scene, rng: random.Random) -> list[str]:
    """Noun phrases in reading order, identical shapes merged: "two small green triangles"."""
    groups: dict[tuple, int] = {}
    for o in V.reading_order(scene):
        key = (o.size, o.colour, o.shape)
        groups[key] = groups.get(key, 0) + 1
    out = []
    for (size, colour, shape), k in groups.items():
        words = f"{V.size_word(size, rng)} {colour}"
        out.append(V.with_article(f"{words} {shape}") if k == 1 else f"{V.number_word(k)} {words} {V.plural(shape)}")
    return out


def _step2_attributes(scene: Scene, rng: random.Random) -> str:
    objs = V.reading_order(scene)
    nps = V.join_list(_grouped_phrases(scene, rng))
    if len(objs) == 1:
        o = objs[0]
        text = rng.choice((
            f"The shape is {V.with_article(V.object_phrase(o, rng))}.",
            f"It is {V.with_article(o.size)} {o.shape}, colored {o.colour}.",
        ))
    else:
        text = rng.choice((
            f"In detail, there are {nps}.",
            f"The shapes are {nps}.",
            f"Looking closer, the image contains {nps}.",
        ))
    hidden = [o for o in objs if o.occluded]
    for o in hidden:
        ref = V.unique_ref(scene, o, rng)
        text += " " + _cap(rng.choice((f"{ref} is partly hidden.", f"{ref} is partly covered.")))
    return text


def _pair_sentence(scene: Scene, a, b, rng: random.Random) -> str | None:
    """A relation sentence between two objects in the same row or column, else None."""
    ra, rb = V.unique_ref(scene, a, rng), V.unique_ref(scene, b, rng)
    if a.row == b.row:
        left, right = (ra, rb) if a.col < b.col else (rb, ra)
        return _cap(rng.choice((f"{left} is to the left of {right}.", f"{right} is to the right of {left}.")))
    if a.col == b.col:
        up, down = (ra, rb) if a.row < b.row else (rb, ra)
        return _cap(rng.choice((f"{up} is above {down}.", f"{down} is below {up}.")))
    return None


def _step3_relations(scene: Scene, rng: random.Random) -> str:
    objs = V.reading_order(scene)
    if len(objs) == 1:
        o = objs[0]
        return rng.choice((
            f"The {o.shape} sits {V.cell_phrase(o.cell, rng)}, with no other shape around it.",
            f"With nothing else present, the {o.shape} stands alone {V.cell_phrase(o.cell, rng)}.",
        ))
    pairs = [(a, b) for i, a in enumerate(objs) for b in objs[i + 1:] if a.row == b.row or a.col == b.col]
    rng.shuffle(pairs)
    sentences = [s for a, b in pairs[:2] if (s := _pair_sentence(scene, a, b, rng))]
    for o in objs:
        for cover_id in o.occluded_by:
            front = next(x for x in scene.objects if x.id == cover_id)
            ref_f, ref_o = V.unique_ref(scene, front, rng), V.unique_ref(scene, o, rng)
            sentences.append(_cap(rng.choice((f"{ref_f} overlaps {ref_o}.",
                                               f"{ref_f} partly covers {ref_o}."))))
    if not sentences:  # no aligned pair and no overlap: say where the shapes are spread
        rows = sorted({o.row for o in objs})
        where = {0: "top", 1: "middle", 2: "bottom"}
        spread = V.join_list([f"the {where[r]} row" for r in rows])
        sentences.append(rng.choice((f"The shapes are spread over {spread}, none sharing a row or column.",
                                     f"No two shapes share a row or column; they occupy {spread}.")))
    return " ".join(sentences)


def _step4_peripheral(scene: Scene, rng: random.Random) -> str:
    bg = scene.background
    k = len(scene.specks)
    if k == 0:
        clutter = rng.choice((f"The {bg} background is clean, with no clutter",
                              f"There is no clutter on the {bg} background"))
    elif k <= 2:
        clutter = rng.choice((f"A few tiny gray specks dot the {bg} background",
                              f"The {bg} background has a few gray specks"))
    else:
        clutter = rng.choice((f"Several tiny gray specks dot the {bg} background",
                              f"The {bg} background has several gray specks"))
    edge = (rng.choice(("a thin dark border runs along the edges.", "a thin dark frame surrounds the image."))
            if scene.border else rng.choice(("the edges have no border.", "there is no border.")))
    return f"{clutter}, and {edge}"


def _step5_paragraph(scene: Scene, rng: random.Random) -> str:
    objs = V.reading_order(scene)
    bg = scene.background
    n = len(objs)
    opener = rng.choice((f"This image shows {_count_np(n, rng)} on a {bg} background.",
                         f"On a {bg} background there {'is' if n == 1 else 'are'} {_count_np(n, rng)}."))
    placed = [f"{V.with_article(V.object_phrase(o, rng))} {V.cell_phrase(o.cell, rng)}" for o in objs]
    body = _cap(rng.choice((f"There is {V.join_list(placed)}.",
                            f"{V.join_list(placed)}.",
                            f"We see {V.join_list(placed)}.")))
    extra = []
    for o in objs:
        for cover_id in o.occluded_by:
            front = next(x for x in scene.objects if x.id == cover_id)
            extra.append(f"{_cap(V.unique_ref(scene, front, rng))} partly covers {V.unique_ref(scene, o, rng)}.")
    k = len(scene.specks)
    clutter = ("no clutter" if k == 0 else "a few gray specks" if k <= 2 else "several gray specks")
    tail = rng.choice((f"The background has {clutter}",
                       f"Around the shape{'' if n == 1 else 's'} there {'is' if k == 0 else 'are'} {clutter}"))
    tail += ", and a thin border frames the image." if scene.border else "."
    return " ".join([opener, body, *extra, tail])


def cod_steps(scene: Scene, rng: random.Random) -> list[str]:
    """The five CoD step bodies of a scene (salient, attributes, relations, peripheral, paragraph)."""
    return [_step1_salient(scene, rng), _step2_attributes(scene, rng), _step3_relations(scene, rng),
            _step4_peripheral(scene, rng), _step5_paragraph(scene, rng)]


def cod_text(scene: Scene, rng: random.Random) -> str:
    """The full CoD answer (`formats.format_cod`)."""
    return formats.format_cod(cod_steps(scene, rng))


def direct_description(scene: Scene, rng: random.Random) -> str:
    """The direct detailed description: the Step 5 paragraph alone."""
    return _step5_paragraph(scene, rng)


# ------------------------------------------------------------------ corpus for the tiny tokenizer / LM
def scene_text_corpus(n_scenes: int = 500, seed: int = 0, cfg: SceneConfig | None = None) -> Iterator[str]:
    """Texts of the world (prompts, captions, CoD, questions, CoT answers), for tokenizer training.

    Uses its own split name, so its scenes are none of `generate_world`'s scenes.
    """
    from sicog.demo.world import questions as Q  # local: questions imports this module's helpers

    cfg = cfg or SceneConfig()
    yield from (formats.SYSTEM_PROMPT, formats.COD_PROMPT, formats.CAPTION_PROMPT,
                formats.SHORT_ANSWER_INSTRUCTION, formats.STEP_BY_STEP_INSTRUCTION,
                formats.MCQ_LETTER_INSTRUCTION, *formats.BRIEF_CAPTION_PROMPTS)
    for i in range(n_scenes):
        scene = scene_for(seed, "corpus", i, cfg, f"corpus-{i:06d}")
        rng = random.Random(f"corpus-text:{seed}:{i}")
        yield brief_caption(scene, rng)
        yield cod_text(scene, rng)
        for q in Q.make_questions(scene, rng, k=2, cfg=cfg):
            yield Q.short_prompt(q)
            yield Q.cot_prompt(q)
            yield q.answer
            yield Q.cot_answer(q)
            if q.options:
                letters, answer = Q.mcq_layout(q, rng)
                yield formats.mcq_prompt(q.text, letters, style="direct")
                yield formats.mcq_prompt(q.text, letters, style="cot")
                yield Q.cot_answer(q, mcq_options=letters, mcq_answer=answer)
