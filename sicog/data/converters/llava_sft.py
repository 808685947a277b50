"""`sicog convert llava-sft`: LLaVA-665K (llava_v1_5_mix665k.json) -> the checked SFT mix.

Every record is checked as a training record (sicog.data.records.validate_training_record:
alternating human/gpt turns ending with gpt), its image (when it has one) inside --image-folder
and present when a folder is given, one `<image>` placed first for an image record, none in a
text-only record (ShareGPT's part of the mix). Records that fail are skipped and counted by reason.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Job, Skip, convert_file, relative_image, with_one_placeholder
from sicog.data.records import DataError, record_id, validate_training_record

KEEP = ("all", "image", "text")

DESCRIPTION = """\
LLaVA-665K (or any LLaVA SFT mix) -> checked SFT records: schema, image inside --image-folder and
present, one <image> first for image records and none in text-only ones; skips counted by reason.
"""


@dataclass
class LlavaSftConfig:
    """Settings of `sicog convert llava-sft`."""

    data: str | None = setting(None, "llava_v1_5_mix665k.json (or another LLaVA SFT file)", required=True)
    out: str | None = setting(None, "output SFT records, .jsonl", required=True)
    image_folder: str | None = setting(None, "when given, every image must exist inside it (else the record is "
                                             "skipped and counted)")
    keep: str = setting("all", "all records, only those with an image, or only text-only ones (e.g. a text-only "
                               "set for stage 1.5); the others are counted as other-kind", choices=KEEP)
    progress: bool = setting(True, "no progress bar", invert="--no-progress")
    overwrite: bool = setting(False, "replace an output made with other settings")


def convert_record(rec: dict, where: str, image_folder: str | None, keep: str = "all") -> dict[str, list[dict]]:
    if keep != "all" and isinstance(rec, dict) and bool(rec.get("image")) != (keep == "image"):
        raise Skip("other-kind", f"--keep {keep}")
    try:
        validate_training_record(rec, where, require_answer=True)
    except DataError as e:
        raise Skip("bad-record", str(e).split(": ", 1)[-1]) from None
    rec["conversations"] = [{"from": t["from"], "value": t["value"]} for t in rec["conversations"]
                            if t["from"] in ("human", "gpt")]
    image = relative_image(rec, image_folder, where, required=False)
    with_one_placeholder(rec["conversations"], image is not None)
    out = {"id": record_id(rec, where.rsplit(":", 1)[-1])}
    if image is not None:
        out["image"] = image
    out["conversations"] = rec["conversations"]
    return {"--out": [out]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, LlavaSftConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(LlavaSftConfig, args)
    job = Job("llava-sft", cfg.data, {"--out": cfg.out},
              settings={k: v for k, v in asdict(cfg).items() if k not in ("data", "overwrite", "progress")},
              overwrite=cfg.overwrite, progress=cfg.progress, inputs={"--image-folder": cfg.image_folder})
    convert_file(job, lambda rec, where: convert_record(rec, where, cfg.image_folder, cfg.keep))
    return 0
