"""Which option letter a model's free-text reply chose, for multiple-choice scoring.

`extract_choice(text, options)` is a pure function: it never guesses. A reply that names no
option, or names several equally, gives None and is scored as unanswered (wrong).

What is recognised, in the order tried on each part of the reply:
  * a letter alone: "B", "(B)", "[B]", "B.", also lower-case ("b", "(b)") ;
  * the text of exactly one option: "red" -> the letter whose option is "red" ;
  * a leading letter with a delimiter: "B. red", "(B) red", "B) red", "B: red" ;
  * "answer" then a letter: "Answer: B", "the answer is (B)", "answer: option C" (the last) ;
  * a leading letter then words: "B red" (for "A"/"I", which are also English words, the
    option text in the rest decides first) ;
  * the text of exactly one option inside the reply ("It is a red circle") ;
  * exactly one option letter standing alone in the reply ("I think C is right", "option D").
The parts tried are, first to last: the final answer of a CoT reply (`extract_final_answer`,
"The answer is X."), the conclusion step of a structured CoT, the whole reply.
"""

from __future__ import annotations

import re
import string

from sicog.data.formats import COT_STEP_HEADERS, extract_final_answer, split_steps

_LETTER_ALONE = re.compile(r"^[\(\[]?\s*([A-Z])\s*[\)\]]?\s*[.:]?$")
_LETTER_BRACKETED = re.compile(r"^[\(\[]\s*([A-Z])\s*[\)\]]\s*(.*)$", re.DOTALL)
_LETTER_DELIMITED = re.compile(r"^([A-Z])\s*[.:)]\s+(.*)$", re.DOTALL)
_LETTER_SPACED = re.compile(r"^([A-Z])\s+(.*)$", re.DOTALL)
_KEYWORD_LETTER = re.compile(
    r"\banswer\b\s*(?:is|would be|should be|=)?\s*:?\s*(?:option\s*|choice\s*)?"
    r"[\(\[]?([A-Z])[\)\]]?(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_STANDALONE_LETTER = re.compile(r"(?<![A-Za-z0-9'])([A-Z])(?![A-Za-z0-9'])")
#: letters that are also English words: "A red circle", "I think"
_WORD_LETTERS = frozenset("AI")
_EDGE_PUNCT = string.punctuation + " \t\n\"'`*"


def normalize_text(text: str) -> str:
    """Lower-case, collapse whitespace, strip punctuation and quotes at both ends."""
    return " ".join(str(text).lower().split()).strip(_EDGE_PUNCT)


def answer_matches(got: str | None, answer: str, options: dict[str, str] | None = None) -> bool:
    """Whether the final answer `got` names `answer`: the same text after `normalize_text` ("(B)" is
    "B"), or, when `answer` is the letter of one of `options`, that option's text.

    The one rule for a label's final answer against the truth (the round monitor's probe,
    the demo's label quality).
    """
    if not got:
        return False
    norm = normalize_text(got)
    if norm == normalize_text(answer):
        return True
    option = (options or {}).get(answer)
    return bool(option) and norm == normalize_text(option)


def _contains_phrase(haystack: str, phrase: str) -> bool:
    """True when `phrase` occurs in `haystack` as whole words (both already normalised)."""
    if not phrase:
        return False
    return re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", haystack) is not None


def match_option_text(text: str, options: dict[str, str]) -> str | None:
    """The letter whose option text is `text`, or the only option whose text `text` mentions.

    When several options are mentioned and all but one are contained in the remaining one
    ("dark red" vs "red"), the longest wins; otherwise the reply is ambiguous (None).
    """
    norm = normalize_text(text)
    if not norm:
        return None
    normalized = {letter: normalize_text(value) for letter, value in options.items()}
    exact = [letter for letter, value in normalized.items() if value and value == norm]
    if len(exact) == 1:
        return exact[0]
    found = [letter for letter, value in normalized.items() if _contains_phrase(norm, value)]
    # drop options whose text is part of another mentioned option's text
    maximal = [
        a for a in found
        if not any(b != a and normalized[a] != normalized[b] and _contains_phrase(normalized[b], normalized[a])
                   for b in found)
    ]
    if len({normalized[a] for a in maximal}) == 1 and len(maximal) == 1:
        return maximal[0]
    return None


def _match_part(text: str, options: dict[str, str]) -> str | None:
    """Try every recognised form on one part of a reply (see the module docstring)."""
    text = text.strip().strip("*`\"' ")
    if not text:
        return None
    # a lone letter may come lower-case ("b", "(c)"): alone it cannot be anything else
    m = _LETTER_ALONE.match(text) or _LETTER_ALONE.match(text.upper() if len(text) <= 4 else "")
    if m:
        return m.group(1) if m.group(1) in options else None
    by_text = normalize_text(text)
    exact = [k for k, v in options.items() if normalize_text(v) == by_text and by_text]
    if len(exact) == 1:
        return exact[0]
    for pattern in (_LETTER_BRACKETED, _LETTER_DELIMITED):
        m = pattern.match(text)
        if m and m.group(1) in options:
            return m.group(1)
    keyword = [m.group(1) for m in _KEYWORD_LETTER.finditer(text) if m.group(1) in options]
    if keyword:
        return keyword[-1]
    m = _LETTER_SPACED.match(text)
    if m and m.group(1) in options:
        letter, rest = m.group(1), m.group(2)
        if letter not in _WORD_LETTERS:
            return letter
        named = match_option_text(rest, options)
        if named is not None:
            return named
        # "A red circle" where no option is named: the article reading is as likely as the
        # letter, so only a reply whose rest agrees with option A's text counts as A
        if _contains_phrase(normalize_text(rest), normalize_text(options[letter])):
            return letter
    named = match_option_text(text, options)
    if named is not None:
        return named
    letters = {
        m.group(1) for m in _STANDALONE_LETTER.finditer(text)
        if m.group(1) in options and not _is_word_use(text, m)
    }
    if len(letters) == 1:
        return letters.pop()
    return None


def _is_word_use(text: str, m: re.Match) -> bool:
    """True when a standalone "A"/"I" reads as an English word (followed by a lower-case word)."""
    if m.group(1) not in _WORD_LETTERS:
        return False
    return re.match(r"\s+[a-z]", text[m.end():]) is not None


def extract_choice(text: str | None, options: dict[str, str]) -> str | None:
    """The option letter chosen by `text`, or None when no single option can be read from it.

    `options` maps letters to option texts and holds only the options that exist (empty/NaN
    options left out), so a letter outside it is never returned.
    """
    if not text or not options:
        return None
    options = {k: str(v) for k, v in options.items()}
    parts: list[str] = []
    final = extract_final_answer(text)
    if final:
        parts.append(final)
    conclusion = split_steps(text).get(len(COT_STEP_HEADERS), "")
    if conclusion:
        parts.append(conclusion)
    parts.append(text)
    for part in parts:
        letter = _match_part(part, options)
        if letter is not None:
            return letter
    return None
