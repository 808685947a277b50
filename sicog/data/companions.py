"""The second form of a CoD / CoT record: its direct description / short answer ("companion").

The paper's warm-up annotations come in two forms: every Chain-of-Description caption beside the
same image's direct description (its Step-5 paragraph alone), every structured-CoT answer beside
its short answer. `companion` derives that second form from a record of the first, so stage-1.5
data built from self-generated or ground-truth labels can carry both forms as the annotations do
(pipeline `mixture.companions`).
"""

from __future__ import annotations

from sicog.data.formats import (
    CAPTION_PROMPT,
    MCQ_LETTER_INSTRUCTION,
    STEP_BY_STEP_INSTRUCTION,
    extract_cod_description,
    extract_final_answer,
    read_mcq_options,
    strip_image_token,
    to_direct_question,
    with_image_token,
)
from sicog.data.records import first_user_text

#: the id suffix of each task's companion (the world's annotations use the same)
SUFFIX = {"captions": "direct", "reasoning": "short"}


def companion(rec: dict, task: str) -> dict | None:
    """The companion record of a CoD (task captions) or CoT (task reasoning) training record; None
    when its answer has no Step-5 description / no "The answer is …" to take."""
    answer = next((t["value"] for t in rec["conversations"] if t.get("from") in ("gpt", "assistant")), "")
    if task == "captions":
        text, prompt = extract_cod_description(answer), CAPTION_PROMPT
    else:
        text, prompt = extract_final_answer(answer), _direct(strip_image_token(first_user_text(rec)))
    if not text:
        return None
    out = {"id": f"{rec['id']}-{SUFFIX[task]}"}
    if rec.get("image"):
        out["image"] = rec["image"]
        prompt = with_image_token(prompt)
    out["conversations"] = [{"from": "human", "value": prompt}, {"from": "gpt", "value": text}]
    return out


def _direct(question: str) -> str:
    """The question asked for a short answer: a multiple-choice one for its letter (as the world's and
    VLMEvalKit's direct prompts ask), any other for a word or phrase."""
    if read_mcq_options(question) and STEP_BY_STEP_INSTRUCTION in question:
        return question.replace(STEP_BY_STEP_INSTRUCTION, MCQ_LETTER_INSTRUCTION)
    return to_direct_question(question)
