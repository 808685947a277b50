"""The world's label noiser: a stated count or final answer made wrong, in range (the oracle_noised arm).

The pipeline's truth sources with `noise` (sicog.pipeline.arms) ask a registered `LabelNoiser`
(sicog.pipeline.hooks) to make labels wrong, because only the world knows what a stated count is:

- a CoD caption states the scene's total number of shapes ("Three geometric shapes stand out …",
  "This image shows three shapes …"): every such statement is replaced by another total the world
  can draw (SceneConfig's min_objects … max_objects);
- a CoT answer to a counting question concludes "There are three yellow shapes. The answer is 3."
  after "Counting … gives 3.": the count of steps 3–4 is replaced by another in-range count (0 …
  max_objects for a count of one class, min_objects … max_objects for all shapes; for a
  multiple-choice question another of its options, letter and value); the listing of step 2 stays
  as it was, as a wrong self-generated label's may.

`stated` reads what a label states: the total of a caption's description (Step 5), the final answer
of a CoT; `is_wrong` judges a label by it against the truth label of its item (stating none is wrong).
With `like` (the wrong values the curated labels state for the item's true value) the wrong count is
drawn with those weights among the in-range ones, so the noise has the teacher's shape (mostly near
misses, biased as it is) instead of being spread evenly; a multiple-choice answer is another of its
options either way (a letter means nothing across questions).
"""

from __future__ import annotations

import re

from sicog.data.formats import extract_cod_description, extract_cot_answer
from sicog.demo.world import vocab as V
from sicog.demo.world.scenes import SceneConfig

_WORD_VALUE = {w: i for i, w in enumerate(V.NUMBER_WORDS)} | {"a single": 1}
# a scene's total as the texts state it ("three shapes", "a single object"); not "No two shapes share a
# row" (a relation) nor "no shapes" (a total is at least min_objects)
_TOTAL_RE = re.compile(r"(?<![Nn]o )\b(a single|" + "|".join(V.NUMBER_WORDS[1:]) +
                       r")\s+(geometric shape|shape|object)(s?)\b(?! share)", re.IGNORECASE)
_COT_END_RE = re.compile(r"There (is|are) (\w+) ([^.\n]+)\.(\s*)The answer is (\w+)\.")
_COT_GIVES_RE = re.compile(r"\bgives (\d+)\b")
_COT_OPTION_RE = re.compile(r"That is option ([A-Z]), (\d+)\.")
_PROMPT_OPTION_RE = re.compile(r"^([A-Z])\. (\d+)$", re.MULTILINE)


def _low_high(task: str, text: str) -> tuple[int, int]:
    cfg = SceneConfig()
    if task == "reasoning" and "Counting only" in text:  # a count of one class: none is possible
        return 0, cfg.max_objects
    return cfg.min_objects, cfg.max_objects


def _other(n: int, low: int, high: int, rng, like=None) -> int | None:
    values = [v for v in range(low, high + 1) if v != n]
    weights = [like.get(str(v), 0) for v in values] if like else []
    if any(weights):
        return rng.choices(values, weights=weights)[0]
    return rng.choice(values) if values else None


def _cased(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def _stated_total(text: str) -> int | None:
    m = _TOTAL_RE.search(text or "")
    return _WORD_VALUE[m.group(1).lower()] if m else None


def _answer_value(text: str) -> str | None:
    got = extract_cot_answer(text or "")
    if not got:
        return None
    got = got.strip().strip(".").lower()
    return str(_WORD_VALUE[got]) if got in _WORD_VALUE else got


class WorldLabelNoiser:
    """sicog.pipeline.hooks.LabelNoiser for the synthetic world's CoD and counting CoT."""

    def wrong(self, text: str, prompt: str, task: str, rng, like=None) -> str | None:
        if task == "captions":
            return self._wrong_caption(text, rng, like)
        return self._wrong_cot(text, prompt, rng, like)

    def stated(self, label: str, task: str) -> str | None:
        if task == "captions":  # a truth caption may be its description alone
            total = _stated_total(extract_cod_description(label or "") or label or "")
            return None if total is None else str(total)
        return _answer_value(label)

    def is_wrong(self, label: str, truth: str, task: str) -> bool:
        said = self.stated(label, task)
        return said is None or said != self.stated(truth, task)

    def _wrong_caption(self, text: str, rng, like=None) -> str | None:
        n = _stated_total(text)
        m = None if n is None else _other(n, *_low_high("captions", text), rng, like)
        if m is None:
            return None

        def sub(match: re.Match) -> str:
            noun = match.group(2) + ("" if m == 1 else "s")
            return f"{_cased(V.number_word(m), match.group(1))} {noun}"

        return _TOTAL_RE.sub(sub, text)

    def _wrong_cot(self, text: str, prompt: str, rng, like=None) -> str | None:
        end, gives = _COT_END_RE.search(text), _COT_GIVES_RE.search(text)
        if end is None or gives is None:
            return None
        n = int(gives.group(1))
        options = {letter: int(v) for letter, v in _PROMPT_OPTION_RE.findall(prompt or "")}
        if end.group(5).isdigit():  # an open question: any other in-range count
            m, answer = _other(n, *_low_high("reasoning", text), rng, like), None
        else:  # a multiple-choice question: another of its options
            low, high = _low_high("reasoning", text)  # another option, in range where one is (options may not be)
            others = sorted(k for k, v in options.items() if v != n)
            letter = rng.choice([k for k in others if low <= options[k] <= high] or others or [None])
            m, answer = options.get(letter), letter
        if m is None:
            return None
        noun = end.group(3)
        if n == 1 and m != 1:
            noun += "s"
        elif n != 1 and m == 1 and noun.endswith("s"):
            noun = noun[:-1]
        conclusion = (f"There {'is' if m == 1 else 'are'} {V.number_word(m)} {noun}.{end.group(4)}"
                      f"The answer is {answer or m}.")
        head = _COT_GIVES_RE.sub(f"gives {m}", text[:end.start()])
        if answer:
            head = _COT_OPTION_RE.sub(f"That is option {answer}, {m}.", head)
        return head + conclusion + text[end.end():]


NOISER = WorldLabelNoiser()
