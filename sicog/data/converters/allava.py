"""`sicog convert allava-caption`: ALLaVA Caption-VFLAN-4V / Caption-LAION-4V -> the input of
`sicog annotate cod` (image + question + original caption, LLaVA layout).

ALLaVA's caption files are LLaVA records (human question with `<image>`, gpt caption by GPT-4V);
some store the caption under `caption` instead. A record keeps its first question and its
caption; a record with more turns keeps its first pair and the rest is counted
(`extra-pairs-dropped`). The image must lie inside --image-folder and be present when a folder
is given. The paper annotates 35K of them: --sample 35000 --seed S draws them at random.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Context, ConvertConfig, Job, Skip, convert_file
from sicog.data.converters.record_checks import with_one_placeholder

DESCRIPTION = """\
ALLaVA Caption-VFLAN-4V / Caption-LAION-4V -> caption records for `sicog annotate cod` (image,
question, original caption). --sample N --seed S draws N at random (the paper: 35,000).
"""


@dataclass
class AllavaCaptionConfig(ConvertConfig):
    """Settings of `sicog convert allava-caption`."""

    data: str | None = setting(None, "ALLaVA-Caption-VFLAN-4V.json (or -LAION-4V): .json, .jsonl or parquet",
                               required=True)
    out: str | None = setting(None, "output caption records, .jsonl", required=True)


def convert_record(rec: dict, ctx: Context) -> dict:
    convs = rec.get("conversations")
    if not isinstance(convs, list) or len(convs) < 1 or not all(isinstance(t, dict) for t in convs):
        raise Skip("bad-record", "expected 'conversations': a list of turns")
    humans = [i for i, t in enumerate(convs) if t.get("from") == "human"]
    gpts = [i for i, t in enumerate(convs) if t.get("from") == "gpt"]
    question = convs[humans[0]].get("value") if humans else None
    caption = rec.get("caption") or (convs[gpts[0]].get("value") if gpts else None)
    if not isinstance(question, str) or not question.replace("<image>", "").strip():
        raise Skip("no-question", "no human turn with text")
    if not isinstance(caption, str) or not caption.strip():
        raise Skip("no-caption", "neither a 'caption' key nor a gpt turn with text")
    extra = len(convs) - len(humans[:1] + gpts[:1])
    if extra > 0:
        ctx.changed("extra-pairs-dropped", f"{len(convs)} turns: the first question and answer kept, {extra} "
                                           f"later turn(s) dropped")
    image = ctx.image(rec)
    pair = [{"from": "human", "value": question}, {"from": "gpt", "value": caption.strip()}]
    with_one_placeholder(pair, True, ctx)
    return {"--out": [{"id": ctx.id, "image": image, "conversations": pair}]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, AllavaCaptionConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(AllavaCaptionConfig, args)
    job = Job.from_config("allava-caption", cfg, {"--out": cfg.out})
    convert_file(job, lambda rec, ctx: convert_record(rec, ctx))
    return 0
