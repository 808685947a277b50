"""VLMEvalKit's answer normalisation for open answers (from the VQA evaluation it adopted).

`strip_punctuation`: each of ``;/[]"{}()=+\\_-><@`,?!`` is deleted where the text has that mark
next to a space anywhere (or has a digit-comma-digit such as "1,000" anywhere), and replaced by a
space otherwise; then periods not touching a digit are deleted. VLMEvalKit hands `re.UNICODE` to
`re.sub` where the replacement count goes, so at most 32 such periods are deleted: kept here.

`normalize_answer`: newlines and tabs to spaces, trimmed, punctuation as above, lower-cased,
number words none..ten to digits, the articles a/an/the dropped, and contractions written
without apostrophe ("dont") given one ("don't").
"""

from __future__ import annotations

import re

PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
               ",", "?", "!")
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
_PERIOD_OFF_DIGITS = re.compile(r"(?<!\d)\.(?!\d)")
#: VLMEvalKit's `periodStrip.sub('', text, re.UNICODE)`: the flag lands in `count`
_PERIOD_LIMIT = int(re.UNICODE)

NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
# contraction without apostrophe -> with (the VQA evaluation's table; keys are compared after
# lower-casing, so its few capitalised keys never match and are left out)
_CONTRACTIONS = """aint ain't|arent aren't|cant can't|couldve could've|couldnt couldn't|couldn'tve couldn't've|
couldnt've couldn't've|didnt didn't|doesnt doesn't|dont don't|hadnt hadn't|hadnt've hadn't've|hadn'tve hadn't've|
hasnt hasn't|havent haven't|hed he'd|hed've he'd've|he'dve he'd've|hes he's|howd how'd|howll how'll|hows how's|
isnt isn't|itd it'd|itd've it'd've|it'dve it'd've|itll it'll|let's let's|maam ma'am|mightnt mightn't|
mightnt've mightn't've|mightn'tve mightn't've|mightve might've|mustnt mustn't|mustve must've|neednt needn't|
notve not've|oclock o'clock|oughtnt oughtn't|ow's'at 'ow's'at|'ows'at 'ow's'at|'ow'sat 'ow's'at|shant shan't|
shed've she'd've|she'dve she'd've|she's she's|shouldve should've|shouldnt shouldn't|shouldnt've shouldn't've|
shouldn'tve shouldn't've|somebody'd somebodyd|somebodyd've somebody'd've|somebody'dve somebody'd've|
somebodyll somebody'll|somebodys somebody's|someoned someone'd|someoned've someone'd've|someone'dve someone'd've|
someonell someone'll|someones someone's|somethingd something'd|somethingd've something'd've|
something'dve something'd've|somethingll something'll|thats that's|thered there'd|thered've there'd've|
there'dve there'd've|therere there're|theres there's|theyd they'd|theyd've they'd've|they'dve they'd've|
theyll they'll|theyre they're|theyve they've|twas 'twas|wasnt wasn't|wed've we'd've|we'dve we'd've|weve we've|
werent weren't|whatll what'll|whatre what're|whats what's|whatve what've|whens when's|whered where'd|
wheres where's|whereve where've|whod who'd|whod've who'd've|who'dve who'd've|wholl who'll|whos who's|
whove who've|whyll why'll|whyre why're|whys why's|wont won't|wouldve would've|wouldnt wouldn't|
wouldnt've wouldn't've|wouldn'tve wouldn't've|yall y'all|yall'll y'all'll|y'allll y'all'll|yall'd've y'all'd've|
y'alld've y'all'd've|y'all'dve y'all'd've|youd you'd|youd've you'd've|you'dve you'd've|youll you'll|
youre you're|youve you've"""
CONTRACTIONS = dict(pair.strip().split(" ") for pair in _CONTRACTIONS.replace("\n", "").split("|"))


def strip_punctuation(text: str) -> str:
    """VLMEvalKit's `process_punctuation` (see the module docstring)."""
    has_number_comma = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        spaced = has_number_comma or (mark + " ") in text or (" " + mark) in text
        out = out.replace(mark, "" if spaced else " ")
    return _PERIOD_OFF_DIGITS.sub("", out, count=_PERIOD_LIMIT)


def digits_and_articles(text: str) -> str:
    """Lower-case words; number words to digits, articles dropped, contractions given apostrophes."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize_answer(text: str) -> str:
    """The VQA evaluation's answer normalisation, as VLMEvalKit applies it (`process_answer`)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return digits_and_articles(strip_punctuation(text))
