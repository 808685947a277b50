"""VLMEvalKit's exact-matching semantics, and the figure `sicog evaluate` reports with them."""

import pytest

from sicog.eval.answers import extract_choice
from sicog.eval.mcq import McqItem, McqPrediction, summarize_mcq
from sicog.eval.vlmevalkit_matching import vlmevalkit_choice, vlmevalkit_hit

OPTIONS = {"A": "blue", "B": "green", "C": "red", "D": "yellow"}


@pytest.mark.parametrize("reply, letter", [
    ("B", "B"), ("(B)", "B"), ("B. green", "B"), ("[C]", "C"), ("Answer: D", "D"), ("**C**", "C"),
    ("The answer is {D}!", "D"),
    ("green", "B"),                                   # no letter: the one option text in the reply
    ("It looks green to me", "B"),
    ("I am bored", "C"),                              # plain substring: "red" is in "bored"
    ("Blue or green?", "Z"),                          # two option texts: none
    ("b", "Z"),                                       # letters count in upper case only
    ("A or B", "Z"),                                  # two letters, no option text: none
    ("Z", "Z"),
    ("Cannot determine the answer from the image. A", "Z"),   # a refusal sentence wins
    ("Failed to obtain answer via API. A", "Z"),      # no letter read from an API error; no option text
    ("Failed to obtain answer via API: green", "B"),
    ("", "Z"),
])
def test_vlmevalkit_choice(reply, letter):
    assert vlmevalkit_choice(reply, OPTIONS) == letter


def test_a_chain_of_thought_is_read_differently_from_sicog():
    reply = "The circle is red. That is option C, red. Counting again, The answer is B."
    assert extract_choice(reply, OPTIONS) == "B"          # the stated final answer
    assert vlmevalkit_choice(reply, OPTIONS) == "C"       # two letters: the one option text decides
    assert vlmevalkit_hit(reply, OPTIONS, "C") and not vlmevalkit_hit(reply, OPTIONS, "B")


def test_only_the_options_letters_count():
    assert vlmevalkit_choice("I think it is B", {"A": "x", "B": "y"}) == "B"   # "I" is no option here
    assert vlmevalkit_choice("C", {"A": "x", "B": "y"}) == "Z"


def test_summary_reports_both_readings():
    item = McqItem(index="1", line=2, question="q", options=dict(OPTIONS), answer="C")
    preds = [McqPrediction(item, r, extract_choice(r, item.options))
             for r in ("That is option C, red. The answer is B.", "C", "no idea")]
    s = summarize_mcq(preds)
    assert (s["correct"], s["unanswered"]) == (1, 1)
    assert s["vlmevalkit_exact_matching"] == {"correct": 2, "accuracy": 2 / 3, "unanswered": 1}
    assert "vlmevalkit_exact_matching" not in summarize_mcq(preds, vlmevalkit=False)
