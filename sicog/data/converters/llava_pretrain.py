"""`sicog convert llava-pretrain`: LLaVA-Pretrain-558K or LLaVA-ReCap-558K -> alignment records,
or -> the unlabeled image pool that `sicog sample --mode cod` reads.

Both releases are LLaVA records with one human turn (a short caption request with `<image>`) and
one gpt turn (the BLIP caption, or ReCap's detailed one). --as alignment keeps them, checked
(one `<image>`, placed first; the image inside --image-folder and present when a folder is given);
--as pool keeps the human turn only (records without a gpt turn: nothing to leak into sampling).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Job, Skip, convert_file, relative_image, turns, with_one_placeholder
from sicog.data.records import record_id

DESCRIPTION = """\
LLaVA-Pretrain-558K / LLaVA-ReCap-558K -> alignment records (--as alignment) or the unlabeled image
pool (--as pool: records without a gpt turn). Image paths stay relative to --image-folder.
"""

KINDS = ("alignment", "pool")


@dataclass
class LlavaPretrainConfig:
    """Settings of `sicog convert llava-pretrain`."""

    data: str | None = setting(None, "blip_laion_cc_sbu_558k.json or the ReCap-558K file", required=True)
    out: str | None = setting(None, "output records, .jsonl", required=True)
    kind: str = setting("alignment", "alignment: caption records for stage 1; pool: image records without an "
                                     "answer, for `sicog sample --mode cod`", choices=KINDS, flags=("--as",))
    image_folder: str | None = setting(None, "when given, every image must exist inside it (else the record is "
                                             "skipped and counted)")
    progress: bool = setting(True, "no progress bar", invert="--no-progress")
    overwrite: bool = setting(False, "replace an output made with other settings")


def convert_record(rec: dict, where: str, kind: str, image_folder: str | None) -> dict[str, list[dict]]:
    convs = turns(rec)
    if len(convs) != 2 or [t["from"] for t in convs] != ["human", "gpt"]:
        raise Skip("not-a-caption-pair", "expected one human turn then one gpt turn")
    if not convs[1]["value"].strip() and kind == "alignment":
        raise Skip("empty-caption", "the gpt turn is empty")
    image = relative_image(rec, image_folder, where)
    with_one_placeholder(convs, True)
    out = {"id": record_id(rec, where.rsplit(":", 1)[-1]), "image": image,
           "conversations": convs if kind == "alignment" else convs[:1]}
    return {"--out": [out]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, LlavaPretrainConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(LlavaPretrainConfig, args)
    job = Job("llava-pretrain", cfg.data, {"--out": cfg.out},
              settings={k: v for k, v in asdict(cfg).items() if k not in ("data", "overwrite", "progress")},
              overwrite=cfg.overwrite, progress=cfg.progress, inputs={"--image-folder": cfg.image_folder})
    convert_file(job, lambda rec, where: convert_record(rec, where, cfg.kind, cfg.image_folder))
    return 0
