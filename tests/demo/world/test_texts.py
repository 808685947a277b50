"""Every fact stated in the world's texts agrees with the scene graph; formats round-trip."""

import random
import re

import pytest

from sicog.data import formats as F
from sicog.demo.world import annotate as A
from sicog.demo.world import questions as Q
from sicog.demo.world import vocab as V
from sicog.demo.world.scenes import CELL_NAMES, SceneConfig, count_matching, scene_for

CFG = SceneConfig()
SCENES = [scene_for(7, "test", i, CFG, f"t-{i}") for i in range(120)]


def _matches(obj, mention) -> bool:
    return all(mention[k] is None or getattr(obj, k) == mention[k] for k in ("shape", "colour", "size", "cell"))


def _assert_mentions_true(text, scene):
    for m in V.extract_object_mentions(text):
        if m["plural"]:
            continue  # class nouns ("red shapes", "circles") are checked by the count tests
        assert any(_matches(o, m) for o in scene.objects), f"{m} not in scene {scene.id}: {text}"


_COUNT_RE = re.compile(
    r"\b(no|one|two|three|four|five|six|seven|eight|nine) (?:(large|big|small|little) )?"
    r"(?:(" + "|".join(CFG.colours) + r") )?(?:geometric )?(shape|object|" + "|".join(CFG.shapes) + r")s?\b")


def _assert_counts_true(text, scene):
    """Every "<number> [size] [colour] <noun>" phrase states a true count."""
    for m in _COUNT_RE.finditer(text):
        number, size, colour, noun = m.groups()
        size = next((s for s, ws in V.SIZE_WORDS.items() if size in ws), None)
        shape = None if noun in ("shape", "object") else noun
        assert count_matching(scene, shape=shape, colour=colour, size=size) == V.NUMBER_WORDS.index(number), \
            f"{m.group(0)!r} is false in {scene.id}: {text}"


def _resolve(scene, ref: str):
    """The single object a definite description ("the big red circle", "the object at the top left") names."""
    cell = next((c for p, c in sorted(((p, c) for c, ps in V.CELL_PHRASES.items() for p in ps),
                                      key=lambda pc: -len(pc[0])) if ref.endswith(p)), None)
    words = ref.split()
    size = next((s for s, ws in V.SIZE_WORDS.items() if any(w in words for w in ws)), None)
    colour = next((c for c in CFG.colours if c in words), None)
    shape = next((s for s in CFG.shapes if s in words), None)
    found = [o for o in scene.objects if (cell is None or o.cell == cell) and (size is None or o.size == size)
             and (colour is None or o.colour == colour) and (shape is None or o.shape == shape)]
    assert len(found) == 1, f"reference {ref!r} is not unique in {scene.id}"
    return found[0]


def _truth(scene, q):
    """The answer recomputed from the question text and the scene graph alone."""
    t = q.text
    if m := re.match(r"How many more (\w+)(?: shapes)? than (\w+)(?: shapes)? are there\?", t):
        def n(w):
            return count_matching(scene, colour=w) if w in CFG.colours else count_matching(scene, shape=w[:-1])
        return str(n(m.group(1)) - n(m.group(2)))
    if m := re.match(r"Are there more (\w+)(?: shapes)? than (\w+)(?: shapes)?\?", t):
        def n(w):
            return count_matching(scene, colour=w) if w in CFG.colours else count_matching(scene, shape=w[:-1])
        return "yes" if n(m.group(1)) > n(m.group(2)) else "no"
    if t.startswith("How many"):
        words = t.split()
        colour = next((c for c in CFG.colours if c in words), None)
        shape = next((s for s in CFG.shapes if f"{s}s" in words), None)
        return str(count_matching(scene, shape=shape, colour=colour))
    if t.startswith(("Which color is the most common", "Which color appears most often")):
        counts = {c: count_matching(scene, colour=c) for c in CFG.colours}
        return max(counts, key=counts.get)
    if m := re.match(r"(?:What|Which) color (?:is|does) (.+?)(?: have)?\?", t):
        return _resolve(scene, m.group(1)).colour
    if m := re.match(r"(?:What|Which) shape is (.+)\?", t):
        return _resolve(scene, m.group(1)).shape
    if m := re.match(r"(?:Is (.+) large or small|What size is (.+))\?", t):
        return _resolve(scene, m.group(1) or m.group(2)).size
    if m := re.match(r"(?:Where is (.+) located|In which part of the image is (.+))\?", t):
        return _resolve(scene, m.group(1) or m.group(2)).cell
    if m := re.match(r"Where is (.+) relative to (.+)\?", t):
        a, b = _resolve(scene, m.group(1)), _resolve(scene, m.group(2))
        return Q._direction(a, b)
    if m := re.match(r"Is (the .+?) (to the left of|to the right of|above|below) (the .+)\?", t):
        a, b = _resolve(scene, m.group(1)), _resolve(scene, m.group(3))
        rel = {"to the left of": a.col < b.col, "to the right of": a.col > b.col,
               "above": a.row < b.row, "below": a.row > b.row}[m.group(2)]
        return "yes" if rel else "no"
    if m := re.match(r"(?:Is there an? |Does the image contain an? )(\w+) (\w+)", t):
        return "yes" if count_matching(scene, colour=m.group(1), shape=m.group(2)) else "no"
    if m := re.match(r"Which is larger, (the .+) or (the .+)\?", t):
        a, b = _resolve(scene, m.group(1)), _resolve(scene, m.group(2))
        return (m.group(1) if a.size == "large" else m.group(2))[len("the "):]
    if "not in the image" in t or "missing from" in t:
        absent = [o for o in q.options if not count_matching(scene, colour=o.split()[0], shape=o.split()[1])]
        assert len(absent) == 1
        return absent[0]
    if t.startswith("Which of these"):
        present = [o for o in q.options if count_matching(scene, colour=o.split()[0], shape=o.split()[1])]
        assert len(present) == 1
        return present[0]
    raise AssertionError(f"test does not know question {t!r}")


def test_cod_round_trips_and_states_only_true_facts():
    checked = {"relation": 0, "covers": 0}
    for i, scene in enumerate(SCENES):
        rng = random.Random(i)
        steps = A.cod_steps(scene, rng)
        text = F.format_cod(steps)
        assert F.parse_cod(text) == [s.strip() for s in steps]
        assert F.extract_cod_description(text) == steps[4]
        _assert_mentions_true(text, scene)
        _assert_counts_true(text, scene)
        # the Step 5 paragraph names every object with all its attributes and its cell
        full = [m for m in V.extract_object_mentions(steps[4]) if None not in (m["colour"], m["size"], m["cell"])]
        assert sorted((m["shape"], m["colour"], m["size"], m["cell"]) for m in full) == \
            sorted((o.shape, o.colour, o.size, o.cell) for o in scene.objects)
        # relations stated in steps 3 and 5 hold in the scene graph
        for sent in re.split(r"(?<=\.) ", steps[2] + " " + steps[4]):
            if m := re.match(r"(the .+?) is (to the left of|to the right of|above|below) (the .+?)\.$", sent, re.I):
                a, b = _resolve(scene, m.group(1).lower()), _resolve(scene, m.group(3))
                assert {"to the left of": a.col < b.col, "to the right of": a.col > b.col,
                        "above": a.row < b.row, "below": a.row > b.row}[m.group(2)], sent
                checked["relation"] += 1
            elif m := re.match(r"(the .+?) (?:overlaps|partly covers) (the .+?)\.$", sent, re.I):
                front, back = _resolve(scene, m.group(1).lower()), _resolve(scene, m.group(2))
                assert front.id in back.occluded_by, sent
                checked["covers"] += 1
        n = len(scene.objects)
        first = steps[4].split(".")[0]
        assert V.number_word(n) in first.split() or (n == 1 and ("single" in first or "one" in first))
        if any(o.occluded for o in scene.objects):
            assert "partly" in text
        if scene.border:
            assert "border" in steps[3] or "frame" in steps[3]
        if not scene.specks:
            assert "clutter" in steps[3]
    assert checked["relation"] > 50 and checked["covers"] > 3, checked


def test_brief_captions_are_true_and_short():
    for i, scene in enumerate(SCENES):
        cap = A.brief_caption(scene, random.Random(i))
        _assert_mentions_true(cap, scene)
        _assert_counts_true(cap, scene)
        assert len(cap.split()) <= 14
        if cap.lower().startswith("mostly"):
            colour = cap.split()[1]
            assert 2 * count_matching(scene, colour=colour) > len(scene.objects)


def test_wording_varies():
    texts = {A.cod_steps(s, random.Random(i))[0].split(" ")[0] for i, s in enumerate(SCENES)}
    assert len(texts) >= 3  # several sentence templates for step 1
    paragraphs = {re.sub(r"\b(" + "|".join(CFG.colours) + r")\b", "C", A.direct_description(s, random.Random(i)))
                  for i, s in enumerate(SCENES)}
    assert len(paragraphs) > 100


@pytest.mark.parametrize("mcq", [False, True])
def test_question_answers_are_true(mcq):
    seen_kinds = set()
    for i, scene in enumerate(SCENES):
        rng = random.Random(1000 + i)
        for q in Q.make_questions(scene, rng, 5, CFG, mcq=mcq):
            seen_kinds.add(q.kind)
            assert q.answer == _truth(scene, q), q
            cot = Q.cot_answer(q)
            assert F.parse_cot(cot) is not None
            assert F.extract_final_answer(cot) == q.answer
            assert F.extract_cot_answer(cot) == q.answer
            if q.text.startswith("How many") and "more" not in q.text:
                # the count stated in the conclusion equals the true count
                concl = F.parse_cot(cot)[3]
                word = concl.split()[2]
                assert V.NUMBER_WORDS.index(word) == int(q.answer)
            _assert_mentions_true(F.parse_cot(cot)[1], scene)
            _assert_counts_true(cot, scene)
            if mcq:
                assert len(q.options) == 4 and len(set(q.options)) == 4 and q.answer in q.options
                letters, letter = Q.mcq_layout(q, rng)
                assert letters[letter] == q.answer
                cot = Q.cot_answer(q, letters, letter)
                assert F.extract_final_answer(cot) == letter
                prompt = F.mcq_prompt(q.text, letters, style="direct")
                assert F.to_cot_question(prompt) == F.mcq_prompt(q.text, letters, style="cot")
    assert seen_kinds == set(Q.KINDS)


def test_short_and_cot_prompts():
    q = Q.make_question(SCENES[0], random.Random(0), "count", CFG)
    assert Q.short_prompt(q).endswith(F.SHORT_ANSWER_INSTRUCTION)
    assert Q.cot_prompt(q).endswith(F.STEP_BY_STEP_INSTRUCTION)
    assert F.to_direct_question(Q.cot_prompt(q)) == Q.short_prompt(q)


def test_mentions_parse_back():
    got = V.extract_object_mentions("A big red circle in the top left corner, and little blue squares.")
    assert got[0] == {"shape": "circle", "colour": "red", "size": "large", "cell": "top left", "plural": False}
    assert got[1]["shape"] == "square" and got[1]["plural"] and got[1]["size"] == "small"
    assert all(c in V.CELL_PHRASES for c in CELL_NAMES)


def test_scene_text_corpus_is_deterministic():
    a = list(A.scene_text_corpus(n_scenes=5, seed=3))
    b = list(A.scene_text_corpus(n_scenes=5, seed=3))
    assert a == b and len(a) > 20 and all(isinstance(t, str) and t for t in a)
    assert F.COD_PROMPT in a


def test_question_kinds_restrict_every_question():
    cfg = SceneConfig(question_kinds=("count", "comparison"))
    kinds = {q.kind for i in range(40) for q in Q.make_questions(scene_for(0, "t", i, cfg, f"t{i}"),
                                                                 random.Random(i), k=3, cfg=cfg)}
    assert kinds == {"count", "comparison"}
    with pytest.raises(ValueError, match="question_kinds"):
        SceneConfig(question_kinds=("count", "colour"))


def test_question_subtypes_keep_only_those_subtypes():
    cfg = SceneConfig(question_kinds=("count",), question_subtypes=("count_all",))
    questions = [q for i in range(40) for q in Q.make_questions(scene_for(0, "t", i, cfg, f"t{i}"),
                                                                random.Random(i), k=2, cfg=cfg)]
    assert {q.subtype for q in questions} == {"count_all"} and len(questions) > 40
    everything = SceneConfig(question_kinds=("count",))
    assert {q.subtype for i in range(40) for q in Q.make_questions(
        scene_for(0, "t", i, everything, f"t{i}"), random.Random(i), k=2, cfg=everything)} == {"count_all", "count_class"}
    with pytest.raises(ValueError, match="question_subtypes must be subtypes of the question kinds"):
        SceneConfig(question_kinds=("count",), question_subtypes=("count_all", "colour"))
    with pytest.raises(ValueError, match="at least one of each kind"):  # attribute would ask nothing
        SceneConfig(question_kinds=("count", "attribute"), question_subtypes=("count_all",))
