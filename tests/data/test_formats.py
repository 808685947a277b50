"""The CoD / CoT contracts: formatting and extraction round-trip."""

from sicog.data import formats as F


def test_cod_round_trip():
    steps = ["A red circle.", "It is large.", "It is left of a square.", "Grey specks.", "A large red circle sits left of a blue square."]
    text = F.format_cod(steps)
    assert text.startswith(F.COD_STEP_HEADERS[0] + "\n\n")
    assert F.parse_cod(text) == steps
    assert F.extract_cod_description(text) == steps[-1]


def test_cod_missing_step_is_none():
    text = F.format_cod(["a", "b", "c", "d", "e"]).split("Step 5")[0]
    assert F.parse_cod(text) is None
    assert F.extract_cod_description(text) is None


def test_cot_round_trip_and_answer():
    text = F.format_cot("Count the circles.", "Two red circles.", "One plus one is two.", F.answer_sentence("2"))
    assert F.parse_cot(text)[3] == "The answer is 2."
    assert F.extract_final_answer(text) == "2"
    assert F.extract_cot_answer(text) == "2"


def test_answer_extraction_variants():
    assert F.extract_final_answer("So the answer is B.") == "B"
    assert F.extract_final_answer("The answer is: red circle. More text.") == "red circle"
    assert F.extract_final_answer("The answer is 3.5 units") == "3.5 units"
    assert F.extract_final_answer("no conclusion here") is None
    # conclusion step used when "The answer is" is missing
    text = F.format_cot("a", "b", "c", "It is blue")
    assert F.extract_cot_answer(text) == "It is blue"


def test_questions():
    q = "What colour is the circle?\n" + F.SHORT_ANSWER_INSTRUCTION
    assert F.to_cot_question(q).endswith(F.STEP_BY_STEP_INSTRUCTION)
    assert F.SHORT_ANSWER_INSTRUCTION not in F.to_cot_question(q)
    assert F.to_cot_question("How many?").endswith("\n" + F.STEP_BY_STEP_INSTRUCTION)
    assert F.to_direct_question(F.to_cot_question(q)) == q
    assert F.with_image_token("hi") == "<image>\nhi"
    assert F.cod_question() == "Please generate a detailed caption of this image. Describe the image step by step."
