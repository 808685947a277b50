"""sicog.demo.label_noise: the oracle_noised arm's wrong counts are wrong, in range, and judged alike."""

import random
import re

import pytest

from sicog.data import formats as F
from sicog.demo.label_noise import NOISER
from sicog.demo.world import annotate as A
from sicog.demo.world import questions as Q
from sicog.demo.world.scenes import SceneConfig, scene_for

CFG = SceneConfig(question_kinds=("count",))
SCENES = [scene_for(7, "test", i, CFG, f"t-{i}") for i in range(60)]


def test_a_noised_caption_states_another_in_range_total_everywhere():
    for i, scene in enumerate(SCENES):
        truth = F.format_cod(A.cod_steps(scene, random.Random(i)))
        wrong = NOISER.wrong(truth, "", "captions", random.Random(i))
        assert wrong is not None and wrong != truth
        assert NOISER.is_wrong(wrong, truth, "captions") and not NOISER.is_wrong(truth, truth, "captions")
        stated = {m.lower() for m in re.findall(
            r"\b(a single|no|one|two|three|four|five|six|seven|eight|nine) (?:geometric shape|shape|object)s?\b",
            F.extract_cod_description(wrong), flags=re.I)}
        assert len(stated) == 1  # the description states one total, the wrong one
        n = {"a single": 1, **{w: k for k, w in enumerate(("no", "one", "two", "three", "four", "five", "six"))}}
        assert CFG.min_objects <= n[stated.pop()] <= CFG.max_objects
        # nothing but the stated totals changes: the relations and the margins are the truth's
        assert F.parse_cod(wrong)[2:4] == F.parse_cod(truth)[2:4]


@pytest.mark.parametrize("mcq", [False, True])
def test_a_noised_cot_concludes_another_in_range_count(mcq):
    done = 0
    for i, scene in enumerate(SCENES):
        rng = random.Random(i)
        for q in Q.make_questions(scene, rng, 2, CFG, mcq=mcq):
            letters, letter = Q.mcq_layout(q, rng) if mcq else (None, None)
            truth = Q.cot_answer(q, letters, letter) if mcq else Q.cot_answer(q)
            prompt = F.mcq_prompt(q.text, letters, style="cot") if mcq else Q.cot_prompt(q)
            wrong = NOISER.wrong(truth, prompt, "reasoning", random.Random(i))
            assert wrong is not None and F.parse_cot(wrong) is not None
            assert NOISER.is_wrong(wrong, truth, "reasoning") and not NOISER.is_wrong(truth, truth, "reasoning")
            answer = F.extract_final_answer(wrong)
            value = int(letters[answer]) if mcq else int(answer)
            assert value != int(q.answer) and 0 <= value <= CFG.max_objects
            assert f"gives {value}" in wrong and f"gives {q.answer}" not in wrong
            assert F.parse_cot(wrong)[:2] == F.parse_cot(truth)[:2]  # the task and the listing stay
            done += 1
    assert done > 50


def test_labels_that_state_nothing_are_judged_wrong_and_left_alone():
    assert NOISER.is_wrong("", "Step 4: Conclude.\nThere are two shapes. The answer is 2.", "reasoning")
    assert NOISER.wrong("no count here", "", "reasoning", random.Random(0)) is None
    assert NOISER.wrong("no count here", "", "captions", random.Random(0)) is None


def test_wrong_values_like_the_curated_ones_are_drawn_with_their_weights():
    truth = F.format_cod(A.cod_steps(SCENES[0], random.Random(0)))
    n = int(NOISER.stated(truth, "captions"))
    near = str(n + 1 if n < CFG.max_objects else n - 1)
    said = {NOISER.stated(NOISER.wrong(truth, "", "captions", random.Random(i), like={near: 3}), "captions")
            for i in range(20)}
    assert said == {near}  # the only wrong value the curated labels gave
    # a value out of range (or none given) leaves the uniform draw
    spread = {NOISER.stated(NOISER.wrong(truth, "", "captions", random.Random(i), like={"99": 3}), "captions")
              for i in range(40)}
    assert len(spread) > 2 and str(n) not in spread
