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


# A CoD header line: "Step 3:", "**Step 3:**", "## Step 3 -", "Step 3. ..." at the start of a line,
# with the markup models add; `lead`/`close` hold that markup, `rest` what follows the separator
_COD_HEADER = re.compile(r"^(?P<lead>[ \t>#*_]*)Step\s+(?P<number>\d+)\s*(?P<close>[*_]*)\s*[:.\-](?P<rest>[^\n]*)$",
                         re.MULTILINE | re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.IGNORECASE)
_SENTENCE_END = (".", "!", "?", '"', "\u201d")
_LABEL_WORDS = 12  # a title of its own ("Peripheral details") is short; a sentence ends in . ! ?
_TITLE_END = " \t.,:;-\u2013\u2014*_"


class CodFormatError(ValueError):
    """A text that is not a Chain-of-Description (the message says why)."""


def _after_title(rest: str, title: str) -> str:
    """What of a header line's `rest` is step text: `rest` without the step's title when it starts
    with it ("Extract salient content ..." or the whole title, then the text), else all of it."""
    words = _WORD.findall(title.split(":", 1)[1])
    pos, matched = 0, 0
    for m in _WORD.finditer(rest):
        if matched == len(words) or m.group(0).lower() != words[matched].lower() or (
                matched and rest[pos:m.start()].strip(" \t,")):
            break
        pos, matched = m.end(), matched + 1
    after = rest[pos:]
    if matched == 0:
        return rest.strip()
    if not after.strip(_TITLE_END):  # the title, or its first words, alone on the line
        return ""
    if matched == len(words) or after.lstrip(" \t*_")[:1] in (":", "-", "\u2013", "\u2014"):
        return after.lstrip(_TITLE_END)
    return rest.strip()  # a sentence that happens to start with the title's first words


def _header_text(m: re.Match, title: str | None) -> str:
    """The step text on a header line (what models write after "Step k:"), without title or markup."""
    lead, rest = m.group("lead"), m.group("rest")
    if "#" in lead:  # a markdown heading is a title
        return ""
    bold = lead.strip(" \t>#")
    if bold and not m.group("close"):  # "**Step 2: Title** text": the bold part is the title
        end = rest.find(bold)
        return rest[end + len(bold):].strip() if end >= 0 else ""
    return _after_title(rest, title) if title else rest.strip()


def _is_label(line: str) -> bool:
    """A short line that is not a sentence (no closing . ! ?): a model's own title for a step."""
    return len(_WORD.findall(line)) <= _LABEL_WORDS and line.rstrip()[-1:] not in _SENTENCE_END


def cod_blocks(text: str) -> list[tuple[int, str]]:
    """Every "Step k:" block of a CoD text in order, as (k, body): the body is the text after the
    header's title on its line (models often start there: "Step 1: The image shows a red bus.") and
    the lines up to the next header. A header line's text is a title, not body, when it is our
    title or its first words, bold or a markdown heading, or a short label without a closing
    . ! ? above lines of text ("Step 4: Peripheral content"). The one reader of CoD step text
    (`read_cod`, `parse_cod`, `extract_cod_description`, the annotator's check)."""
    headers = list(_COD_HEADER.finditer(text))
    blocks = []
    for i, m in enumerate(headers):
        number = int(m.group("number"))
        title = COD_STEP_HEADERS[number - 1] if 1 <= number <= len(COD_STEP_HEADERS) else None
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        first, below = _header_text(m, title), text[m.end():end].strip()
        if below and _is_label(first):  # "Step 4: Peripheral content" above the text: a title
            first = ""
        blocks.append((number, "\n".join(p for p in (first, below) if p)))
    return blocks


def read_cod(text: str | None) -> list[str]:
    """The five step bodies of a CoD text: headers "Step 1:" to "Step 5:" once each, in order, every
    body non-empty; CodFormatError naming what is wrong otherwise."""
    if not text or not text.strip():
        raise CodFormatError("empty text")
    blocks = cod_blocks(text)
    numbers, expected = [k for k, _ in blocks], list(range(1, len(COD_STEP_HEADERS) + 1))
    if numbers != expected:
        raise CodFormatError(f"step headers {numbers or 'none'}, expected {expected} in order")
    empty = [k for k, body in blocks if not body]
    if empty:
        raise CodFormatError(f"step{'s' if len(empty) > 1 else ''} {', '.join(map(str, empty))} empty")
    return [body for _, body in blocks]


def parse_cod(text: str) -> list[str] | None:
    """The five step bodies of a CoD text (`read_cod`), or None when it is not one."""
    try:
        return read_cod(text)
    except CodFormatError:
        return None


def extract_cod_description(text: str) -> str | None:
    """The Step 5 text of a CoD text (what curation embeds; the first Step 5 when a model repeats
    steps), or None when there is none or it is empty."""
    return next((body for k, body in cod_blocks(text) if k == len(COD_STEP_HEADERS)), None) or None


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


_OPTION_LINE = re.compile(r"^([A-Z])\.\s+(.+?)\s*$")


def read_mcq_options(prompt: str) -> dict[str, str]:
    """The options of a prompt laid out by `format_mcq_question` ({letter: text}); {} when it has none."""
    lines = prompt.splitlines()
    if "Options:" not in (line.strip() for line in lines):
        return {}
    start = [line.strip() for line in lines].index("Options:") + 1
    options = {}
    for line in lines[start:]:
        m = _OPTION_LINE.match(line.strip())
        if not m:
            break
        options[m.group(1)] = m.group(2)
    return options


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
