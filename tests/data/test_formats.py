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


def test_cod_step_text_may_start_on_the_header_line():
    bodies = ["The image shows a red bus.", "Its sign reads 42.", "It is left of a tree.", "A kerb at the bottom.",
              "A red bus numbered 42 stands left of a tree."]
    inline = "\n".join(f"Step {k}: {b}" for k, b in enumerate(bodies, 1))
    assert F.parse_cod(inline) == bodies
    assert F.extract_cod_description(inline) == bodies[-1]
    # the canonical title is dropped whether the body follows it on the same line or the next one
    same_line = "\n".join(f"{h} {b}" for h, b in zip(F.COD_STEP_HEADERS, bodies))
    assert F.parse_cod(same_line) == bodies
    # markup models add: a bold title is a title, text after a closed bold header is the body
    marked = "\n".join([f"**Step 1:** {bodies[0]}", f"**Step 2: Details** {bodies[1]}",
                        f"**Step 3: Relations**\n{bodies[2]}", f"## Step 4: Margins\n{bodies[3]}",
                        f"Step 5: Organize all observations\n\n{bodies[4]}"])
    assert F.parse_cod(marked) == bodies
    # a sentence on the header line followed by more lines keeps both
    assert F.parse_cod(inline.replace(bodies[4], bodies[4] + "\nIt is sunny."))[4] == bodies[4] + "\nIt is sunny."


def test_cod_needs_five_non_empty_steps_once_each_in_order():
    assert F.parse_cod("Step 1:\n\nStep 2:\n\nStep 3:\n\nStep 4:\n\nStep 5:\nx") is None
    assert F.parse_cod("\n".join(F.COD_STEP_HEADERS)) is None  # titles only
    bodies = ["a", "b", "c", "d", "e"]
    for k in range(5):
        empty = list(bodies)
        empty[k] = ""
        assert F.parse_cod(F.format_cod(empty)) is None
    assert F.parse_cod(F.format_cod(bodies).replace("Step 3:", "Step 4:", 1)) is None
    assert F.parse_cod(F.format_cod(bodies) + "\n\nStep 5: again") is None
    try:
        F.read_cod("Step 1:\n\nStep 2:\n\nStep 3:\n\nStep 4:\n\nStep 5:\nx")
    except F.CodFormatError as e:
        assert "steps 1, 2, 3, 4 empty" in str(e)
    else:
        raise AssertionError("bare headers accepted")


def test_a_models_own_step_title_is_not_step_text():
    bodies = ["A bus.", "It is red.", "Left of a tree.", "A kerb.", "A red bus left of a tree."]
    own = "\n".join(f"Step {k}: {t}\n{b}" for k, (t, b) in enumerate(zip(
        ["Key elements", "Details:", "Relations (spatial)", "Peripheral content", "Final description"], bodies), 1))
    assert F.parse_cod(own) == bodies
    sentence = F.parse_cod(own.replace("Step 1: Key elements", "Step 1: A bus stands in the street."))
    assert sentence[0] == "A bus stands in the street.\nA bus."  # a sentence on the header line is text


def test_read_mcq_options_reads_back_the_layout():
    from sicog.data.formats import format_mcq_question, read_mcq_options, to_cot_question

    options = {"A": "two", "B": "a red circle"}
    assert read_mcq_options(format_mcq_question("How many?", options, hint="look")) == options
    assert read_mcq_options(to_cot_question(F.mcq_prompt("How many?", options))) == options
    assert read_mcq_options("How many circles?") == {}
