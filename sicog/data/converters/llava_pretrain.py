"""`sicog convert llava-pretrain`: LLaVA-Pretrain-558K or LLaVA-ReCap-558K / 118K -> alignment
records, or -> the unlabeled image pool that `sicog sample --mode cod` reads.

Both releases are LLaVA records with one human turn (a short caption request with `<image>`) and
one gpt turn (the BLIP caption, or ReCap's detailed one). LLaVA-Pretrain is a JSON list beside an
image folder; ReCap is parquet shards with the images inside (--extract-images-to DIR writes them
out once). --as alignment keeps them, checked (one `<image>`, placed first; the image inside
--image-folder and present when a folder is given); --as pool keeps the human turn only (records
without a gpt turn: nothing to leak into sampling).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Context, ConvertConfig, Job, Skip, convert_file
from sicog.data.converters.record_checks import turns, with_one_placeholder

DESCRIPTION = """\
LLaVA-Pretrain-558K / LLaVA-ReCap-558K / 118K -> alignment records (--as alignment) or the unlabeled
image pool (--as pool: records without a gpt turn). Image paths stay relative to --image-folder;
ReCap's parquet shards carry their images: --extract-images-to DIR writes them out.
"""

KINDS = ("alignment", "pool")


@dataclass
class LlavaPretrainConfig(ConvertConfig):
    """Settings of `sicog convert llava-pretrain`."""

    data: str | None = setting(None, "blip_laion_cc_sbu_558k.json, or the ReCap-558K / 118K parquet shards (a "
                                     "folder or a glob)", required=True)
    out: str | None = setting(None, "output records, .jsonl", required=True)
    kind: str = setting("alignment", "alignment: caption records for stage 1; pool: image records without an "
                                     "answer, for `sicog sample --mode cod`", choices=KINDS, flags=("--as",))


def convert_record(rec: dict, ctx: Context, kind: str) -> dict[str, list[dict]]:
    convs = turns(rec)
    if len(convs) != 2 or [t["from"] for t in convs] != ["human", "gpt"]:
        raise Skip("not-a-caption-pair", "expected one human turn then one gpt turn")
    if not convs[1]["value"].strip() and kind == "alignment":
        raise Skip("empty-caption", "the gpt turn is empty")
    image = ctx.image(rec)
    with_one_placeholder(convs, True, ctx)
    out = {"id": ctx.id, "image": image, "conversations": convs if kind == "alignment" else convs[:1]}
    return {"--out": [out]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, LlavaPretrainConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(LlavaPretrainConfig, args)
    job = Job.from_config("llava-pretrain", cfg, {"--out": cfg.out})
    convert_file(job, lambda rec, ctx: convert_record(rec, ctx, cfg.kind))
    return 0
