"""Collapse signals of one round's curated labels: is self-generated data narrowing round by round?

Self-training can collapse: labels grow repetitive, shorter or longer, their answers concentrate
on a few values, or a round re-learns the previous round's labels verbatim. Each signal is a plain
function of the label texts (docs/round_monitor.md says what each means and when it warns):

- distinct-n: distinct word n-grams / all word n-grams over the first `DISTINCT_LABELS` labels (1.0:
  nothing repeats); a fixed count, because over a whole set the figure falls as the set grows, and
  rounds keep sets of different sizes;
- length: mean and median words per label;
- answer distribution (CoT labels): how many labels have a final answer (`extract_cot_answer`,
  normalised by `normalize_text`), how many distinct answers, the Shannon entropy of their
  distribution in bits and the share of the most frequent one;
- copied share: the share of labels whose text (whitespace-normalised) is also one of the previous
  round's labels, whichever item it labelled.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter

from sicog.data.formats import extract_cot_answer
from sicog.eval.answers import normalize_text

_WORD = re.compile(r"\w+")
DISTINCT_LABELS = 50  # labels distinct-n is measured over (docs/round_monitor.md)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (punctuation dropped): what distinct-n and lengths count."""
    return _WORD.findall(text.lower())


def distinct_n(texts: list[str], n: int) -> float | None:
    """Distinct n-grams over all n-grams of every text (each text's own n-grams); None without any."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        w = words(text)
        grams += [tuple(w[i:i + n]) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def length_stats(texts: list[str]) -> dict:
    """{mean_words, median_words} of the texts (None for no text)."""
    lengths = [len(words(t)) for t in texts]
    return {"mean_words": statistics.fmean(lengths) if lengths else None,
            "median_words": statistics.median(lengths) if lengths else None}


def answer_distribution(texts: list[str]) -> dict:
    """{answered, distinct_answers, answer_entropy_bits, top_answer, top_answer_share} of CoT texts."""
    answers = Counter(normalize_text(a) for a in (extract_cot_answer(t) for t in texts) if a)
    total = sum(answers.values())
    if not total:
        return {"answered": 0, "distinct_answers": 0, "answer_entropy_bits": None, "top_answer": None,
                "top_answer_share": None}
    entropy = -sum(c / total * math.log2(c / total) for c in answers.values())
    top, top_count = answers.most_common(1)[0]
    return {"answered": total, "distinct_answers": len(answers), "answer_entropy_bits": entropy + 0.0,
            "top_answer": top, "top_answer_share": top_count / total}


def _key(text: str) -> str:
    return " ".join(text.split())


def copied_share(texts: list[str], previous: list[str] | None) -> float | None:
    """Share of `texts` that are, whitespace aside, one of `previous` (None: no previous round or no text)."""
    if previous is None or not texts:
        return None
    earlier = {_key(t) for t in previous}
    return sum(_key(t) in earlier for t in texts) / len(texts)


def collapse_signals(texts: list[str], previous: list[str] | None = None, answers: bool = False) -> dict:
    """Every signal of one set of labels; `answers` adds the answer distribution (CoT labels)."""
    sample = texts[:DISTINCT_LABELS]
    out = {"labels": len(texts), "distinct_1": distinct_n(sample, 1), "distinct_2": distinct_n(sample, 2),
           **length_stats(texts), "copied_share": copied_share(texts, previous)}
    if answers:
        out.update(answer_distribution(texts))
    return out
