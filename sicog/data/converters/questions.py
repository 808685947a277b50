"""`sicog convert questions`: Q&A records -> a question pool for `sicog sample --mode cot`.

A pool must not carry labels into sampling, so answers are stripped. By default (--turns first)
a record gives one pool record, its first question, as the authors' pool does; later questions
(often follow-ups such as "Why?" that mean nothing alone) are counted as
`later-questions-dropped`. --turns all keeps every question as its own record `<id>-q<k>` (k
from 0), each with the earlier turns of the conversation, answers included, as its context: the
record ends with that question (`sicog sample` itself asks a record's first human turn alone, so
it reads such records as their first question: --turns all is for a sampler that takes the
conversation). --prompt cot asks for a step-by-step answer
(`formats.to_cot_question`: the short-answer instruction replaced, or the request appended);
--prompt as-is keeps the question. The image, when there is one, stays with every question.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Context, ConvertConfig, Job, Skip, convert_file
from sicog.data.converters.record_checks import turns
from sicog.data.formats import strip_image_token, to_cot_question, with_image_token

DESCRIPTION = """\
Q&A records (LLaVA layout) -> a question pool without answers: the first question of each
record (--turns first), or every question with the earlier turns as context (--turns all), in
the CoT prompt variant (--prompt cot) or as asked (--prompt as-is).
"""

PROMPTS = ("cot", "as-is")
TURNS = ("first", "all")


@dataclass
class QuestionsConfig(ConvertConfig):
    """Settings of `sicog convert questions`."""

    data: str | None = setting(None, "question-answer records: .json, .jsonl or parquet", required=True)
    out: str | None = setting(None, "output question pool, .jsonl", required=True)
    prompt: str = setting("cot", "cot: ask for a step-by-step answer; as-is: keep the question", choices=PROMPTS)
    turns: str = setting("first", "first: the first question of each record (later ones are counted as dropped); "
                                  "all: every question, with the earlier turns as its context", choices=TURNS)


def convert_record(rec: dict, ctx: Context, prompt: str, which: str = "first") -> dict[str, list[dict]]:
    convs = turns(rec)
    asked = [i for i, t in enumerate(convs) if t["from"] == "human"]
    if not asked or not all(strip_image_token(convs[i]["value"]) for i in asked):
        raise Skip("no-question", "a human turn without text (or none)")
    if convs[0]["from"] != "human":
        raise Skip("bad-record", "the conversation does not start with a question")
    image = ctx.image(rec, required=False)

    def ask(i: int) -> str:
        q = strip_image_token(convs[i]["value"])
        return to_cot_question(q) if prompt == "cot" else q

    out = []
    if which == "first":
        if len(asked) > 1:
            ctx.changed("later-questions-dropped", f"{len(asked) - 1} later question(s) dropped (--turns all "
                                                   f"keeps them, with their context)")
        picks = [(ctx.id, asked[0])]
    else:
        picks = [(f"{ctx.id}-q{k}", i) for k, i in enumerate(asked)]
    for rid, i in picks:
        context = [{"from": t["from"], "value": strip_image_token(t["value"])} for t in convs[:i]]
        conversation = [*context, {"from": "human", "value": ask(i)}]
        if image is not None:
            conversation[0] = {"from": "human", "value": with_image_token(conversation[0]["value"])}
        r = {"id": rid}
        if image is not None:
            r["image"] = image
        r["conversations"] = conversation
        out.append(r)
    return {"--out": out}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, QuestionsConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(QuestionsConfig, args)
    job = Job.from_config("questions", cfg, {"--out": cfg.out})
    convert_file(job, lambda rec, ctx: convert_record(rec, ctx, cfg.prompt, cfg.turns))
    return 0
