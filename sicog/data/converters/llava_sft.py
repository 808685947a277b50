"""`sicog convert llava-sft`: LLaVA-665K (llava_v1_5_mix665k.json) -> the checked SFT mix.

Every record is checked as a training record (sicog.data.records.validate_training_record:
alternating human/gpt turns ending with gpt), its image (when it has one) inside --image-folder
and present when a folder is given, one `<image>` placed first for an image record, none in a
text-only record (ShareGPT's part of the mix). Records that fail are skipped and counted by
reason. What a kept record loses is counted by reason too: system turns (`system-turns-dropped`),
a question whose answer is empty (`empty-answers-dropped`: the pair goes; a record with no
answered pair left is skipped as `empty-answers`), a placeholder moved to the front. The id of
a record whose id repeats (665K names records after their COCO image) becomes `<id>#k`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Context, ConvertConfig, Job, Skip, convert_file
from sicog.data.converters.record_checks import with_one_placeholder
from sicog.data.records import DataError, validate_training_record

KEEP = ("all", "image", "text")

DESCRIPTION = """\
LLaVA-665K (or any LLaVA SFT mix) -> checked SFT records: schema, image inside --image-folder and
present, one <image> first for image records and none in text-only ones; repeated ids made
unique (<id>#2, ...); skips and changes counted by reason.
"""


@dataclass
class LlavaSftConfig(ConvertConfig):
    """Settings of `sicog convert llava-sft`."""

    data: str | None = setting(None, "llava_v1_5_mix665k.json (or another LLaVA SFT file: .json, .jsonl, parquet)",
                               required=True)
    out: str | None = setting(None, "output SFT records, .jsonl", required=True)
    keep: str = setting("all", "all records, only those with an image, or only text-only ones (e.g. a text-only "
                               "set for stage 1.5); the others are counted as other-kind", choices=KEEP)


def convert_record(rec: dict, ctx: Context, keep: str = "all") -> dict[str, list[dict]]:
    if keep != "all" and bool(rec.get("image")) != (keep == "image"):
        raise Skip("other-kind", f"--keep {keep}")
    try:
        validate_training_record(rec, ctx.where, require_answer=True)
    except DataError as e:
        raise Skip("bad-record", str(e).split(": ", 1)[-1]) from None
    convs = rec["conversations"]
    system = [i for i, t in enumerate(convs) if t["from"] == "system"]
    if system:
        ctx.changed("system-turns-dropped", f"conversations{system}")
    pairs, unanswered = [], []
    dialogue = [{"from": "human" if t["from"] in ("human", "user") else "gpt", "value": t["value"]}
                for t in convs if t["from"] != "system"]
    for k in range(0, len(dialogue), 2):
        question, answer = dialogue[k], dialogue[k + 1]
        if answer["value"].strip():
            pairs += [question, answer]
        else:
            unanswered.append(k // 2)
    if not pairs:
        raise Skip("empty-answers", "every answer is empty")
    if unanswered:
        ctx.changed("empty-answers-dropped", f"pair(s) {unanswered} (0-based) have an empty answer")
    if [t["from"] for t in convs if t["from"] != "system"] != [t["from"] for t in dialogue]:
        ctx.changed("roles-renamed", "user/assistant written as human/gpt")
    image = ctx.image(rec, required=False)
    with_one_placeholder(pairs, image is not None, ctx)
    out = {"id": ctx.id}
    if image is not None:
        out["image"] = image
    out["conversations"] = pairs
    return {"--out": [out]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, LlavaSftConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(LlavaSftConfig, args)
    job = Job.from_config("llava-sft", cfg, {"--out": cfg.out})
    convert_file(job, lambda rec, ctx: convert_record(rec, ctx, cfg.keep))
    return 0
