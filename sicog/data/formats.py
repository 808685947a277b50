"""The SICOG text formats: the one definition of every prompt and step format.

Curation, evaluation, the synthetic world and external scripts all parse these texts,
so they are contracts (see docs/method.md). Change them here and nowhere else.
"""

from __future__ import annotations

import re

IMAGE_TOKEN = "<image>"
SYSTEM_PROMPT = "You are a helpful assistant."

# ---------------------------------------------------------------- prompts (step 2)
CAPTION_REQUEST = "Please generate a detailed caption of this image."
COD_SUFFIX = "Describe the image step by step."
COD_PROMPT = "Please generate a detailed caption of this image. Describe the image step-by-step."
CAPTION_PROMPT = (
    "Please generate a detailed caption of this image. Be as descriptive as possible."
)
SHORT_ANSWER_INSTRUCTION = "Answer the question using a single word or phrase."
STEP_BY_STEP_INSTRUCTION = "Answer the question step-by-step."

# ---------------------------------------------------------------- Chain-of-Description
COD_STEP_HEADERS = (
    "Step 1: Extract salient content by identifying the key elements that define the image "
    "or document.",
    "Step 2: Analyze detailed information, focusing on instance-level attributes such as "
    "low-level and fine-grained details, such as specific text, layout.",
    "Step 3: Consider relational-level attributes, analyzing interactions between elements "
    "and their spatial organization.",
    "Step 4: Examine marginal or peripheral content to ensure no important information is "
    "missed.",
    "Step 5: Organize all observations into a detailed, cohesive description.",
)

# ---------------------------------------------------------------- structured CoT
COT_STEP_HEADERS = (
    "Step 1: Clarify the task objective.",
    "Step 2: Extract the crucial visual information from the image.",
    "Step 3: Generate detailed reasoning to solve the task.",
    "Step 4: Conclude the task with an answer.",
)

_STEP_LINE = re.compile(r"^\s*Step\s+(\d+)\s*:.*$", re.MULTILINE)
_ANSWER_RE = re.compile(r"The answer is\s*:?\s*(.+?)(?:\.(?:\s|$)|\.?\s*$)", re.IGNORECASE | re.DOTALL)


def cod_question(caption_request: str = CAPTION_REQUEST) -> str:
    """A captioning request turned into a CoD question (" Describe the image step by step.")."""
    return f"{caption_request.rstrip()} {COD_SUFFIX}"


def format_cod(steps: list[str] | tuple[str, ...]) -> str:
    """Join five step bodies into a CoD answer: header line, blank line, body; blank line between steps."""
    if len(steps) != len(COD_STEP_HEADERS):
        raise ValueError(f"CoD needs {len(COD_STEP_HEADERS)} steps, got {len(steps)}")
    return "\n\n".join(f"{h}\n\n{b.strip()}" for h, b in zip(COD_STEP_HEADERS, steps))


def format_cot(objective: str, visual: str, reasoning: str, conclusion: str) -> str:
    """Join the four parts of a structured-CoT answer (header line, then text)."""
    bodies = (objective, visual, reasoning, conclusion)
    return "\n\n".join(f"{h}\n{b.strip()}" for h, b in zip(COT_STEP_HEADERS, bodies))


def answer_sentence(answer: str) -> str:
    """The closing sentence every CoT conclusion ends with."""
    return f"The answer is {answer.strip().rstrip('.')}."


def split_steps(text: str) -> dict[int, str]:
    """Split a step-formatted text into {step number: body}; header lines are dropped.

    Tolerant of models that vary the header wording: any line starting "Step K:" opens step K.
    A repeated step number keeps its first occurrence (later ones are usually degenerate loops).
    """
    matches = list(_STEP_LINE.finditer(text))
    steps: dict[int, str] = {}
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        number = int(m.group(1))
        if number not in steps:
            steps[number] = text[m.end():end].strip()
    return steps


def parse_cod(text: str) -> list[str] | None:
    """The five step bodies of a CoD text, or None when steps 1-5 are not all present and non-empty."""
    steps = split_steps(text)
    bodies = [steps.get(k, "") for k in range(1, len(COD_STEP_HEADERS) + 1)]
    return bodies if all(bodies) else None


def extract_cod_description(text: str) -> str | None:
    """The Step 5 paragraph of a CoD text (what curation embeds), or None when there is none."""
    body = split_steps(text).get(len(COD_STEP_HEADERS), "").strip()
    return body or None


def parse_cot(text: str) -> list[str] | None:
    """The four step bodies of a structured-CoT text, or None when any is missing or empty."""
    steps = split_steps(text)
    bodies = [steps.get(k, "") for k in range(1, len(COT_STEP_HEADERS) + 1)]
    return bodies if all(bodies) else None


def extract_final_answer(text: str) -> str | None:
    """The text after the last "The answer is" up to the first period; None when absent."""
    found = None
    for m in _ANSWER_RE.finditer(text):
        found = m.group(1).strip().strip('"').strip()
    return found or None


def extract_cot_answer(text: str) -> str | None:
    """What CoT curation compares: the final answer, else the conclusion step, else None."""
    answer = extract_final_answer(text)
    if answer:
        return answer
    conclusion = split_steps(text).get(len(COT_STEP_HEADERS), "").strip()
    return conclusion or None


def to_cot_question(question: str) -> str:
    """Ask for a step-by-step answer: replace the short-answer instruction (or the multiple-choice
    letter instruction, `MCQ_LETTER_INSTRUCTION`), or append the request."""
    if SHORT_ANSWER_INSTRUCTION in question:
        return question.replace(SHORT_ANSWER_INSTRUCTION, STEP_BY_STEP_INSTRUCTION)
    if MCQ_LETTER_INSTRUCTION in question:  # mcq_prompt(style="direct") -> mcq_prompt(style="cot")
        return question.replace(MCQ_LETTER_INSTRUCTION, STEP_BY_STEP_INSTRUCTION)
    if STEP_BY_STEP_INSTRUCTION in question:
        return question
    return f"{question.rstrip()}\n{STEP_BY_STEP_INSTRUCTION}"


def to_direct_question(question: str) -> str:
    """The question without the step-by-step request (the short-answer companion's prompt)."""
    if STEP_BY_STEP_INSTRUCTION in question:
        return question.replace(STEP_BY_STEP_INSTRUCTION, SHORT_ANSWER_INSTRUCTION)
    return question


def with_image_token(text: str) -> str:
    """The first user turn of an image record: `<image>` then a newline then the text."""
    if IMAGE_TOKEN in text:
        return text
    return f"{IMAGE_TOKEN}\n{text}"


def strip_image_token(text: str) -> str:
    """The user text without the `<image>` placeholder."""
    return text.replace(IMAGE_TOKEN, "").strip()


# ---------------------------------------------------------------- multiple-choice benchmarks
#: the instruction VLMEvalKit's LLaVA-style models append to a multiple-choice prompt
MCQ_LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."


def format_mcq_question(question: str, options: dict[str, str], hint: str | None = None) -> str:
    """A multiple-choice question laid out as VLMEvalKit's ImageMCQDataset does.

    "Hint: ...\\nQuestion: ...\\nOptions:\\nA. ...\\nB. ..." (the hint line only when there is
    one); `options` holds only the options that exist, in letter order.
    """
    lines = []
    if hint:
        lines.append(f"Hint: {hint.strip()}")
    lines.append(f"Question: {question.strip()}")
    if options:
        lines.append("Options:")
        lines.extend(f"{letter}. {str(text).strip()}" for letter, text in options.items())
    return "\n".join(lines)


def mcq_prompt(question: str, options: dict[str, str], hint: str | None = None,
               style: str = "direct") -> str:
    """The user text of a multiple-choice item: the laid-out question, then the instruction.

    style "direct" asks for the option's letter (`MCQ_LETTER_INSTRUCTION`); "cot" asks for a
    step-by-step answer (`STEP_BY_STEP_INSTRUCTION`), whose "The answer is X." is then read;
    "open_cot" asks the question step by step without listing the options (the reply's answer is
    matched to the option texts: for models that never learned to pick a letter).
    """
    if style == "open_cot":
        return "\n".join([*([hint] if hint else []), question, STEP_BY_STEP_INSTRUCTION])
    body = format_mcq_question(question, options, hint)
    if style == "direct":
        return f"{body}\n{MCQ_LETTER_INSTRUCTION}"
    if style == "cot":
        return f"{body}\n{STEP_BY_STEP_INSTRUCTION}"
    raise ValueError(f"unknown multiple-choice prompt style {style!r} (direct, cot or open_cot)")


# ---------------------------------------------------------------- brief captions (stage 1 alignment)
#: requests for a short, alt-text-like caption (LLaVA-558K style); the synthetic world's
#: alignment records use them, with answers that are deliberately incomplete
BRIEF_CAPTION_PROMPTS = (
    "Write a short caption for this image.",
    "Give a brief description of the image.",
    "Describe the image concisely.",
)
