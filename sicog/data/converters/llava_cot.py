"""`sicog convert llava-cot`: LLaVA-CoT answers -> structured-CoT records and short-answer records.

A LLaVA-CoT answer holds four tagged parts, `<SUMMARY>...</SUMMARY> <CAPTION>...</CAPTION>
<REASONING>...</REASONING> <CONCLUSION>...</CONCLUSION>`. Every gpt turn of a record becomes

- in --out-cot: the four structured-CoT steps of sicog.data.formats (summary -> step 1, caption ->
  step 2, reasoning -> step 3, conclusion X -> step 4 as "The answer is X."), its human turn asking for a step-by-step
  answer (`formats.to_cot_question`: "Answer the question using a single word or phrase." is
  replaced, or the request is appended);
- in --out-short: the conclusion alone, its human turn unchanged (id suffixed `-short`).

A record is skipped, whole, when any of its gpt turns has a tag missing, repeated, out of order,
unclosed, an empty part or text outside the parts, when the record is not a human/gpt conversation,
or when it has no image (step 2 is about the image): each skip is counted by reason in the
summary with file:line examples.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Context, ConvertConfig, Job, Skip, convert_file
from sicog.data.converters.record_checks import turns, with_one_placeholder
from sicog.data.formats import answer_sentence, extract_final_answer, format_cot, to_cot_question

DESCRIPTION = """\
LLaVA-CoT (<SUMMARY> <CAPTION> <REASONING> <CONCLUSION>) -> structured-CoT records and short answers.

Every turn of a multi-turn record is converted; a record with a missing, repeated, out-of-order or
unclosed tag (or an empty part, or text outside the parts) is skipped and counted by reason in OUT_COT.summary.json. The
input is never modified.
"""

TAGS = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")
_TAG = re.compile(r"<(/?)(SUMMARY|CAPTION|REASONING|CONCLUSION)>")
SHORT_ID_SUFFIX = "-short"


@dataclass
class LlavaCotConfig(ConvertConfig):
    """Settings of `sicog convert llava-cot`."""

    data: str | None = setting(None, "LLaVA-CoT records: .json, .jsonl or parquet", required=True)
    out_cot: str | None = setting(None, "structured-CoT records, .jsonl", required=True)
    out_short: str | None = setting(None, "short-answer records (the conclusion alone), .jsonl", required=True)


def split_tagged(text: str) -> list[str]:
    """The four parts of a LLaVA-CoT answer, in tag order; Skip naming what is wrong otherwise."""
    found = [(m.group(2), bool(m.group(1)), m) for m in _TAG.finditer(text)]
    opens = [tag for tag, closing, _ in found if not closing]
    for tag in TAGS:
        if opens.count(tag) > 1:
            raise Skip("repeated-tag", f"<{tag}> appears {opens.count(tag)} times")
        if tag not in opens:
            raise Skip("missing-tag", f"no <{tag}>")
    if opens != list(TAGS):
        raise Skip("out-of-order-tags", f"tags in the order {', '.join(opens)}")
    parts, spans = [], []
    for i, tag in enumerate(TAGS):
        start = next(m for t, c, m in found if t == tag and not c)
        close = next((m for t, c, m in found if t == tag and c and m.start() > start.end()), None)
        following = next((m for t, c, m in found if t == TAGS[i + 1] and not c), None) if i + 1 < len(TAGS) else None
        if close is None or (following is not None and close.start() > following.start()):
            raise Skip("unclosed-tag", f"<{tag}> has no </{tag}> before the next part")
        body = text[start.end():close.start()].strip()
        if not body:
            raise Skip("empty-part", f"<{tag}> is empty")
        parts.append(body)
        spans.append((start.start(), close.end()))
    outside = "".join(text[a:b] for a, b in zip([0] + [e for _, e in spans], [s for s, _ in spans] + [len(text)]))
    if outside.strip():
        raise Skip("text-outside-tags", f"{outside.strip()[:60]!r} is in no part")
    return parts


def conclusion_step(conclusion: str) -> str:
    """Step 4's body: LLaVA-CoT's conclusion X as "The answer is X." (docs/method.md, the sentence
    CoT curation reads), or as written when it already says "The answer is"."""
    return conclusion if extract_final_answer(conclusion) else answer_sentence(conclusion)


def convert_record(rec: dict, ctx: Context) -> dict[str, list[dict]]:
    """One record -> {"--out-cot": [its CoT copy], "--out-short": [its short-answer copy]}."""
    convs = turns(rec)
    if convs[0]["from"] != "human" or not any(t["from"] == "gpt" for t in convs):
        raise Skip("bad-record", "expected a human turn first and at least one gpt turn")
    image = ctx.image(rec, required=False)
    if image is None:
        # step 2 asks for "the crucial visual information from the image": a record without an
        # image cannot be written in this format without inventing what the step is about
        raise Skip("no-image", "the structured CoT's step 2 reads an image; this record has none")
    with_one_placeholder(convs, True, ctx)
    split = []
    for i, turn in enumerate(convs):
        if turn["from"] == "gpt":
            try:
                split.append(split_tagged(turn["value"]))
            except Skip as s:
                raise Skip(s.reason, f"conversations[{i}]: {s.detail}") from None
    cot, short = [], []
    answers = iter(split)
    for turn in convs:
        if turn["from"] == "human":
            cot.append({"from": "human", "value": to_cot_question(turn["value"])})
            short.append(dict(turn))
        else:
            *steps, conclusion = next(answers)
            cot.append({"from": "gpt", "value": format_cot(*steps, conclusion_step(conclusion))})
            short.append({"from": "gpt", "value": conclusion})
    base = {k: v for k, v in rec.items() if k not in ("conversations", "image", "id")}
    base["image"] = image
    return {"--out-cot": [{"id": ctx.id, **base, "conversations": cot}],
            "--out-short": [{"id": ctx.id + SHORT_ID_SUFFIX, **base, "conversations": short}]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, LlavaCotConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(LlavaCotConfig, args)
    job = Job.from_config("llava-cot", cfg, {"--out-cot": cfg.out_cot, "--out-short": cfg.out_short})
    convert_file(job, lambda rec, ctx: convert_record(rec, ctx))
    return 0
