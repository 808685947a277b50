"""Visual words: what the word-aligned stand-in vision tower says about each patch of an image.

A real CLIP tower is trained against text, so its patch features already sit close to words;
LLaVA's stage 1 only has to rotate them into the LLM's embedding space. The demo's stand-in tower
(`standins.vision_targets: words`) is trained the same way, explicitly: an image of the 3x3 world
seen through 16-px patches of a 96-px image is a 6x6 patch grid, 2x2 patches per grid cell, and
each patch is taught (contrastively, against the stand-in LM's own word embeddings) one word
about its cell:

    top-left patch: the colour ("red", or "empty")    top-right: the shape ("circle" / "empty")
    bottom-left:   the size ("large" / "empty")       bottom-right: the cell's name ("top left")

so the LM later reads an image row by row as "red circle blue square empty empty / large top left
small top center empty top right / …". The stand-in LM is pre-trained on the same words written
as text in front of questions, captions and step-by-step answers (`visual_word_texts`): like a
real LLM, it can already answer from a description; the image side only has to bring the scene
into its space.
"""

from __future__ import annotations

import random

from sicog.demo.world.scenes import CELL_NAMES, Scene, SceneConfig

EMPTY = "empty"
#: patches per side of a cell: the tower's patch grid must be 3 * CELL_PATCHES
CELL_PATCHES = 2


def cell_words(scene: Scene) -> list[tuple[str, str, str, str]]:
    """Per cell (row-major): (colour, shape, size, cell name), "empty" for the object's parts."""
    by_cell = {o.row * 3 + o.col: o for o in scene.objects}
    out = []
    for c in range(9):
        o = by_cell.get(c)
        out.append((EMPTY, EMPTY, EMPTY, CELL_NAMES[c]) if o is None else (o.colour, o.shape, o.size, CELL_NAMES[c]))
    return out


def patch_words(scene: Scene) -> list[str]:
    """The word of each of the 6x6 patches, in the tower's row-major patch order."""
    cells = cell_words(scene)
    side = 3 * CELL_PATCHES
    out = []
    for r in range(side):
        for c in range(side):
            cell = (r // CELL_PATCHES) * 3 + c // CELL_PATCHES
            out.append(cells[cell][(r % CELL_PATCHES) * CELL_PATCHES + c % CELL_PATCHES])
    return out


def word_vocabulary(cfg: SceneConfig) -> list[str]:
    """Every word a patch can carry (the classes of the tower's contrastive training)."""
    from sicog.demo.world.scenes import SIZES

    return [EMPTY, *cfg.colours, *cfg.shapes, *SIZES, *CELL_NAMES]


def scene_words_text(scene: Scene) -> str:
    """The patch words as text, one line per patch row (what the LM reads in pre-training)."""
    words = patch_words(scene)
    side = 3 * CELL_PATCHES
    return "\n".join(" ".join(words[r * side:(r + 1) * side]) for r in range(side))


def visual_word_texts(scene: Scene, rng: random.Random, cfg: SceneConfig) -> list[str]:
    """Chat turns whose user part starts with the scene's words where an image would be."""
    from sicog.data import formats
    from sicog.demo.world import questions as Q
    from sicog.demo.world.annotate import cod_text, direct_description
    from sicog.model.tokenizer import IM_END, IM_START

    def turn(user: str, reply: str) -> str:
        return (f"{IM_START}user\n{scene_words_text(scene)}\n{user}{IM_END}\n"
                f"{IM_START}assistant\n{reply}{IM_END}")

    out = [turn(formats.COD_PROMPT, cod_text(scene, rng)) if rng.random() < 0.5
           else turn(formats.CAPTION_PROMPT, direct_description(scene, rng))]
    for q in Q.make_questions(scene, rng, k=2, cfg=cfg):
        out.append(turn(Q.short_prompt(q), q.answer))
        out.append(turn(Q.cot_prompt(q), Q.cot_answer(q)))
    return out
