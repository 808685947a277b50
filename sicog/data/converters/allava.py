"""`sicog convert allava-caption`: ALLaVA Caption-VFLAN-4V / Caption-LAION-4V -> the input of
`sicog annotate cod` (image + question + original caption, LLaVA layout).

ALLaVA's caption files are LLaVA records (human question with `<image>`, gpt caption by GPT-4V);
some store the caption under `caption` instead. Records are checked (one human + one gpt turn,
the image inside --image-folder and present when a folder is given), and --limit N keeps the
first N usable records, the paper annotating 35K of them.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Job, Skip, convert_file, relative_image, with_one_placeholder
from sicog.data.records import record_id

DESCRIPTION = """\
ALLaVA Caption-VFLAN-4V / Caption-LAION-4V -> caption records for `sicog annotate cod` (image,
question, original caption). --limit N keeps the first N usable records (the paper: 35,000).
"""


@dataclass
class AllavaCaptionConfig:
    """Settings of `sicog convert allava-caption`."""

    data: str | None = setting(None, "ALLaVA-Caption-VFLAN-4V.json (or -LAION-4V), .json or .jsonl", required=True)
    out: str | None = setting(None, "output caption records, .jsonl", required=True)
    image_folder: str | None = setting(None, "when given, every image must exist inside it (else the record is "
                                             "skipped and counted)")
    limit: int = setting(0, "keep the first N usable records (0: all); the rest are counted as over-limit")
    progress: bool = setting(True, "no progress bar", invert="--no-progress")
    overwrite: bool = setting(False, "replace an output made with other settings")


def convert_record(rec: dict, where: str, image_folder: str | None, state: dict, limit: int) -> dict:
    convs = rec.get("conversations") if isinstance(rec, dict) else None
    if not isinstance(convs, list) or len(convs) < 1 or not all(isinstance(t, dict) for t in convs):
        raise Skip("bad-record", "expected 'conversations': a list of turns")
    question = next((t.get("value") for t in convs if t.get("from") == "human"), None)
    caption = rec.get("caption") or next((t.get("value") for t in convs if t.get("from") == "gpt"), None)
    if not isinstance(question, str) or not question.replace("<image>", "").strip():
        raise Skip("no-question", "no human turn with text")
    if not isinstance(caption, str) or not caption.strip():
        raise Skip("no-caption", "neither a 'caption' key nor a gpt turn with text")
    image = relative_image(rec, image_folder, where)
    pair = [{"from": "human", "value": question}, {"from": "gpt", "value": caption.strip()}]
    with_one_placeholder(pair, True)
    if limit and state["kept"] >= limit:
        raise Skip("over-limit", f"--limit {limit} reached")
    state["kept"] += 1
    return {"--out": [{"id": record_id(rec, where.rsplit(":", 1)[-1]), "image": image, "conversations": pair}]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, AllavaCaptionConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(AllavaCaptionConfig, args)
    if cfg.limit < 0:
        from sicog.utils.io import SicogError

        raise SicogError(f"--limit must be >= 0, got {cfg.limit}")
    job = Job("allava-caption", cfg.data, {"--out": cfg.out},
              settings={k: v for k, v in asdict(cfg).items() if k not in ("data", "overwrite", "progress")},
              overwrite=cfg.overwrite, progress=cfg.progress, inputs={"--image-folder": cfg.image_folder})
    state = {"kept": 0}
    convert_file(job, lambda rec, where: convert_record(rec, where, cfg.image_folder, state, cfg.limit))
    return 0
