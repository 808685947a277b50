"""Caption scoring against scene graphs: hand-made texts and the world's own descriptions."""

import random

import pytest

from sicog.data.formats import format_cod
from sicog.demo.scoring import score_caption, summarize_captions
from sicog.eval.captions import caption_text


def obj(i, shape, colour, size, cell):
    return {"id": i, "shape": shape, "colour": colour, "size": size, "cell": cell}


SCENE = {"objects": [
    obj(0, "circle", "red", "large", "top left"),
    obj(1, "square", "blue", "small", "center"),
    obj(2, "triangle", "green", "large", "bottom right"),
]}
PERFECT = ("There are a large red circle in the top left corner, a small blue square in the center "
           "and a big green triangle in the bottom right corner.")


def test_perfect_caption():
    s = score_caption(PERFECT, SCENE)
    assert s.recall == 1.0 and s.hallucination == 0.0
    assert s.attribute_accuracy == 1.0 and s.pos_checks == 3 and s.pos_correct == 3


def test_absent_object_is_a_hallucination():
    s = score_caption(PERFECT + " A yellow star is next to the circle.", SCENE)
    assert s.hallucination == pytest.approx(1 / 4)
    assert s.recall == 1.0
    s = score_caption("A red square.", SCENE)   # both the colour and shape exist, the pair does not
    assert s.hallucinated == 1 and s.recall == 0.0


def test_partial_and_wrong_attributes():
    s = score_caption("A small red circle and a diamond.", SCENE)
    assert s.recall == pytest.approx(1 / 3)
    assert s.n_mentioned == 2 and s.hallucinated == 1          # the diamond
    assert (s.attr_checks, s.attr_correct) == (2, 1)             # red right, small wrong
    s = score_caption("A blue circle.", SCENE)
    assert s.recall == 0.0 and s.hallucinated == 1
    assert (s.attr_checks, s.attr_correct) == (1, 0)             # circle present, not blue


def test_shape_only_mentions_and_repeats():
    s = score_caption("A circle. The red circle is large. The red circle again.", SCENE)
    assert s.n_mentioned == 1 and s.hallucinated == 0 and s.recalled == 1


def test_duplicates_plural_and_distinct_singulars():
    scene = {"objects": [obj(0, "circle", "red", "large", "top left"),
                         obj(1, "circle", "red", "small", "bottom right")]}
    assert score_caption("Two red circles.", scene).recall == 1.0
    assert score_caption("A red circle.", scene).recall == 0.5
    both = "A large red circle in the top left corner and a small red circle in the bottom right corner."
    assert score_caption(both, scene).recall == 1.0


def test_cod_scores_step5_only():
    steps = ["A red square.", "Step two text.", "Relations.", "Edges.", PERFECT]
    cod = format_cod(steps)
    assert caption_text(cod) == PERFECT
    s = score_caption(cod, SCENE)
    assert s.hallucination == 0.0 and s.recall == 1.0
    assert score_caption(cod, SCENE, use_step5=False).hallucinated == 1   # the red square of step 1


def test_empty_caption():
    s = score_caption("", SCENE)
    assert s.recall == 0.0 and s.hallucination == 0.0 and s.attribute_accuracy is None


def test_summary_micro_averages():
    scores = [score_caption(PERFECT, SCENE), score_caption("A yellow star.", SCENE)]
    summ = summarize_captions(scores)
    assert summ["n"] == 2 and summ["object_recall"] == pytest.approx(3 / 6)
    assert summ["hallucination_rate"] == pytest.approx(1 / 4) and summ["chair_s"] == 0.5
    assert summ["attribute_accuracy"] == 1.0


def test_world_descriptions_score_perfectly():
    """The world's own detailed descriptions state only true facts and name every object."""
    from sicog.demo.world.annotate import cod_text, direct_description
    from sicog.demo.world.scenes import SceneConfig, make_scene

    cfg = SceneConfig()
    for i in range(25):
        rng = random.Random(i)
        scene = make_scene(rng, cfg, f"t-{i}")
        graph = scene.to_dict()
        for text in (direct_description(scene, rng), cod_text(scene, rng)):
            s = score_caption(text, graph)
            assert s.recall == 1.0 and s.hallucination == 0.0, text
            assert s.attribute_accuracy == 1.0 and s.pos_correct == s.pos_checks, text
