"""Answer extraction: which option letter a free-text reply chose."""

import pytest

from sicog.data.formats import answer_sentence, format_cot
from sicog.eval.answers import extract_choice, match_option_text, normalize_text

OPTS = {"A": "blue", "B": "red", "C": "green", "D": "yellow"}
NUM = {"A": "2", "B": "3", "C": "4", "D": "5"}


@pytest.mark.parametrize("text,expected", [
    ("B", "B"),
    ("B.", "B"),
    (" (B) ", "B"),
    ("[C]", "C"),
    ("b", "B"),
    ("(d).", "D"),
    ("**D**", "D"),
    ("The answer is B", "B"),
    ("The answer is B.", "B"),
    ("the answer is (C).", "C"),
    ("(B) red", "B"),
    ("B. red", "B"),
    ("B) red", "B"),
    ("B: red", "B"),
    ("B red", "B"),
    ("red", "B"),
    ("Red.", "B"),
    ("It is a red circle.", "B"),
    ("Answer: C", "C"),
    ("answer: option D", "D"),
    ("Option A is wrong. The answer is C", "C"),
    ("The correct option is D", "D"),
    ("I think C is right.", "C"),
    ("A", "A"),
    ("A. blue", "A"),
    ("A blue one", "A"),          # "A" followed by option A's text
    ("A red one", "B"),           # "A" as an article: the option text decides
    ("The answer is yellow.", "D"),
])
def test_letter_forms(text, expected):
    assert extract_choice(text, OPTS) == expected


@pytest.mark.parametrize("text", [
    "",
    "I do not know",
    "E",                      # not an option
    "red or blue",            # two options named
    "purple",
    "A circle is shown",      # article, no option named, A's text absent
    "Options B and C both look plausible",
])
def test_unanswered(text):
    assert extract_choice(text, OPTS) is None


def test_none_and_empty_options():
    assert extract_choice(None, OPTS) is None
    assert extract_choice("B", {}) is None


def test_only_existing_options_count():
    two = {"A": "yes", "B": "no"}
    assert extract_choice("C", two) is None
    assert extract_choice("no", two) == "B"
    assert extract_choice("Yes, there is.", two) == "A"


def test_numbers_as_options():
    assert extract_choice("3", NUM) == "B"
    assert extract_choice("There are 4 shapes.", NUM) == "C"
    assert extract_choice("The answer is 5.", NUM) == "D"


def test_cot_output_uses_final_answer_first():
    cot = format_cot(
        "Count the red shapes.",
        "There are 2 red circles and 3 blue squares.",   # mentions two options
        "Only the red ones count, so 2.",
        f"So there are two red shapes. {answer_sentence('A')}",
    )
    assert extract_choice(cot, NUM) == "A"
    cot_text = cot.replace(answer_sentence("A"), answer_sentence("2"))
    assert extract_choice(cot_text, NUM) == "A"


def test_cot_without_answer_sentence_uses_conclusion():
    cot = format_cot("Name the colour.", "A red and a blue shape.", "The big one is red.", "It is red")
    assert extract_choice(cot, OPTS) == "B"


def test_last_answer_sentence_wins():
    assert extract_choice("The answer is A. Wait, no. The answer is C.", OPTS) == "C"


def test_overlapping_option_texts_prefer_longest():
    opts = {"A": "red", "B": "dark red", "C": "blue"}
    assert match_option_text("It is dark red", opts) == "B"
    assert extract_choice("red", opts) == "A"


def test_normalize_text():
    assert normalize_text("  The  RED.  ") == "the red"


def test_answer_matches_text_letter_or_the_letters_option():
    from sicog.eval.answers import answer_matches

    assert answer_matches("(B)", "B", {"A": "red", "B": "blue"})
    assert answer_matches("Blue", "B", {"A": "red", "B": "blue"})
    assert not answer_matches("red", "B", {"A": "red", "B": "blue"})
    assert answer_matches(" 3 ", "3") and not answer_matches("4", "3") and not answer_matches(None, "3")
