"""The second form of a CoD / CoT record (sicog.data.companions)."""

from __future__ import annotations

from sicog.data import formats as F
from sicog.data.companions import companion


def _rec(rid, question, answer, image="images/a.png"):
    turns = [{"from": "human", "value": F.with_image_token(question) if image else question},
             {"from": "gpt", "value": answer}]
    return {"id": rid, **({"image": image} if image else {}), "conversations": turns}


def test_a_cod_caption_gets_its_step5_description():
    steps = ["Salient.", "Details.", "Relations.", "Periphery.", "This image shows three shapes."]
    got = companion(_rec("ui-1", F.COD_PROMPT, F.format_cod(steps)), "captions")
    assert got == _rec("ui-1-direct", F.CAPTION_PROMPT, "This image shows three shapes.")


def test_a_cot_answer_gets_its_short_answer_to_the_direct_question():
    cot = F.format_cot("Count the shapes.", "A red circle and a blue square.", "Counting gives 2.",
                       "There are two shapes. The answer is 2.")
    got = companion(_rec("uq-7", F.to_cot_question("How many shapes are there?"), cot), "reasoning")
    assert got == _rec("uq-7-short", f"How many shapes are there?\n{F.SHORT_ANSWER_INSTRUCTION}", "2")
    # a multiple-choice question keeps its options; the answer is the letter the CoT concluded
    mcq = F.mcq_prompt("How many shapes?", {"A": "1", "B": "2"}, style="cot")
    got = companion(_rec("uq-8", mcq, cot.replace("The answer is 2.", "The answer is B.")), "reasoning")
    assert got["conversations"][1]["value"] == "B" and "A. 1" in got["conversations"][0]["value"]
    assert got["conversations"][0]["value"].endswith(F.MCQ_LETTER_INSTRUCTION)


def test_nothing_to_take_gives_no_companion_and_text_only_records_stay_text_only():
    assert companion(_rec("x", F.COD_PROMPT, "Step 1: only a start."), "captions") is None
    assert companion(_rec("y", "How many?\nAnswer the question step-by-step.", "Step 1: I do not know"),
                     "reasoning") is None
    got = companion(_rec("z", "How many?\nAnswer the question step-by-step.", "The answer is 3.", image=None),
                    "reasoning")
    assert "image" not in got and F.IMAGE_TOKEN not in got["conversations"][0]["value"]
