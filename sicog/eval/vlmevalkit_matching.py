"""The letter VLMEvalKit's `exact_matching` judge reads from a reply, so that `sicog evaluate` can
report a figure comparable with published VLMEvalKit numbers.

Our own code, written from the behaviour of VLMEvalKit's multiple-choice scoring without an LLM
judge (`--judge exact_matching`; checked against nvidia-vlmeval 26.3). Its rules differ from
`sicog.eval.answers.extract_choice` on purpose, and the differences are the point:

  1. A reply containing one of a few fixed refusal sentences is "Z" (no option: a miss).
  2. The reply's characters `.()[],:;!*#{}` become spaces and it is split on whitespace. When
     exactly one of the option letters (upper case, e.g. "C") is one of those words, that letter
     is the choice: wherever it stands. "That is option C, red. ... The answer is B." names two
     letters, so this rule does not decide it; "option C ... so B" neither.
  3. Otherwise: the reply and every option text are lower-cased, and when exactly one option's
     text occurs anywhere in the reply (a plain substring: "red" occurs in "bored"), that
     option is the choice.
  4. Otherwise "Z": no option, scored as a miss (VLMEvalKit would ask an LLM judge here; under
     `exact_matching` it does not).

So a chain of thought that mentions one letter before concluding with another is scored by the
first rule only when the letters are the same; `extract_choice` reads the stated final answer
first. Circular evaluation (MMBench's rotated copies) is not reproduced: this is the per-item rule.
"""

from __future__ import annotations

import re

#: the reply is a refusal (VLMEvalKit's fixed list; matched as substrings, case-sensitive)
REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
#: an API error text: no letter is read from it (the text rule still applies)
API_FAILURE = "Failed to obtain answer via API"
#: VLMEvalKit's "no option" letter
NO_OPTION = "Z"
_SEPARATORS = re.compile(r"[.()\[\],:;!*#{}]")


def _letter_words(reply: str, options: dict[str, str]) -> str | None:
    """Rules 1-2: "Z" for a refusal, the one option letter standing as a word, else None."""
    if API_FAILURE in reply:
        return None
    if any(r in reply for r in REFUSALS):
        return NO_OPTION
    words = set(_SEPARATORS.sub(" ", reply).split())
    named = [letter for letter in options if letter in words]
    if len(named) == 1:
        return named[0]
    if not named and NO_OPTION in words:
        return NO_OPTION
    return None


def _option_text(reply: str, options: dict[str, str]) -> str | None:
    """Rule 3: the one option whose lower-cased text is a substring of the lower-cased reply."""
    low = reply.lower()
    named = [letter for letter, text in options.items() if str(text).lower() in low]
    return named[0] if len(named) == 1 else None


def vlmevalkit_choice(reply, options: dict[str, str]) -> str:
    """The letter VLMEvalKit's exact matching reads from `reply` (see the module docstring):
    one of `options`' letters, or "Z" when it reads none (always a miss)."""
    reply = str(reply)
    return _letter_words(reply, options) or _option_text(reply, options) or NO_OPTION


def vlmevalkit_infer(reply, options: dict[str, str]) -> str | None:
    """VLMEvalKit's `can_infer`: like `vlmevalkit_choice`, but None where that says "Z" only
    because no rule decided (VLMEvalKit's False; a refusal or a lone "Z" stays "Z", which is truthy
    there: MathVista's prefetch tells the two apart)."""
    reply = str(reply)
    return _letter_words(reply, options) or _option_text(reply, options)


def vlmevalkit_hit(reply, options: dict[str, str], answer: str) -> bool:
    """True when VLMEvalKit's exact matching scores `reply` as `answer`."""
    return vlmevalkit_choice(reply, options) == answer
