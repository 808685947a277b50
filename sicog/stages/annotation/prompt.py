"""What the annotator model is asked, and the check every answer must pass.

The system prompt carries the paper's guidelines for a Chain-of-Description in our own words: the
five step headers of `sicog.data.formats` in order, steps 1-4 short, step 5 a complete
description, only what is visible (the original caption is a hint, not a source of facts). A
worked example of our own shows the layout.

`parse_answer` accepts an answer only when it has the five "Step k:" headers exactly once each,
in order, with every step's text non-empty (the text may start on the header line, after the
title or instead of it: `sicog.data.formats.read_cod`); it rewrites the headers to their canonical
wording (models like to bold or shorten them) so every training record is laid out the same way.
"""

from __future__ import annotations

import hashlib
import math

from sicog.data.formats import COD_STEP_HEADERS, CodFormatError, format_cod, read_cod

_EXAMPLE_BODIES = (
    "A photograph of a small street-side fruit stall on a sunny day, with a vendor standing behind "
    "wooden crates of produce.",
    "The crates hold red apples, bright oranges and bunches of yellow bananas. A handwritten cardboard "
    "sign on the front crate reads \"2 for $1\" in black marker. The vendor wears a green apron and a "
    "straw hat.",
    "The crates are stacked in two rows, the bananas on the upper row. The vendor stands behind the "
    "middle crate, facing the camera, with a metal scale on a stool to his right.",
    "A striped awning shades the top edge of the frame, and part of a parked bicycle is visible at the "
    "far left.",
    "The photograph shows a small street-side fruit stall on a sunny day. Wooden crates stacked in two "
    "rows hold red apples, bright oranges and, on the upper row, bunches of yellow bananas. A "
    "handwritten cardboard sign on the front crate reads \"2 for $1\" in black marker. Behind the middle "
    "crate stands the vendor, facing the camera in a green apron and a straw hat, with a metal scale on "
    "a stool to his right. A striped awning shades the top of the scene, and part of a parked bicycle "
    "appears at the far left edge.",
)

SYSTEM_PROMPT = (
    "You describe images for a training set. You receive an image, the question that asked for its "
    "description and an earlier description written by someone else. Write a new description that "
    "reasons from the image itself, in five steps.\n\n"
    "Rules:\n"
    "- Cover everything that matters and is visible: objects, people, text, layout, colours, counts.\n"
    "- Invent nothing. Describe only what the image shows; use the earlier description as a hint and "
    "drop whatever in it the image does not confirm.\n"
    "- Add background knowledge only when it is certain and helps understanding.\n"
    "- Steps 1 to 4: one or two short sentences each. Step 5: a complete, self-contained description "
    "in one or two paragraphs that gathers every observation of steps 1 to 4.\n"
    "- Start each step with its header line, exactly as written below, followed by a blank line, "
    "and write nothing before step 1 or after step 5.\n\n"
    + "\n".join(COD_STEP_HEADERS)
    + "\n\nExample of the expected layout (for a different image):\n\n"
    + format_cod(_EXAMPLE_BODIES)
)


def prompt_fingerprint() -> str:
    """Identifies the prompt in a run's settings: changing it is a change of settings."""
    return hashlib.sha256(SYSTEM_PROMPT.encode("utf-8")).hexdigest()[:16]


def user_text(question: str, caption: str) -> str:
    """The text part of the user message."""
    return f"Question: {question}\n\nEarlier description: {caption}"


def build_messages(question: str, caption: str, image_url: str) -> list[dict]:
    """System prompt, then one user message with the image and the text."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                         {"type": "text", "text": user_text(question, caption)}]}]


class InvalidAnswer(ValueError):
    """The model's answer is not a Chain-of-Description (the request is tried again)."""


def parse_answer(text: str | None) -> tuple[str, str]:
    """(the CoD text with canonical headers, the step-5 description); InvalidAnswer otherwise.

    The reading is `sicog.data.formats.read_cod`'s, the same that checks CoD records elsewhere."""
    try:
        bodies = read_cod(text)
    except CodFormatError as e:
        raise InvalidAnswer(str(e)) from None
    return format_cod(bodies), bodies[-1]


def estimate_text_tokens(text: str) -> int:
    """A rough token count (4 characters a token, the usual figure for English BPE vocabularies)."""
    return -(-len(text) // 4)


def estimate_image_tokens(width: int, height: int) -> int:
    """GPT-4o's published rule for a high-detail image: fit in 2048x2048, shortest side to 768, then
    170 tokens per 512-pixel tile plus 85. Other servers count differently: an estimate."""
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles


PROMPT_TOKENS = estimate_text_tokens(SYSTEM_PROMPT)
