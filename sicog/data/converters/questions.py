"""`sicog convert questions`: Q&A records -> a question pool for `sicog sample --mode cot`.

Each human turn of a record becomes one record holding that question only (the answers are
stripped: a pool must not carry labels into sampling). --prompt cot asks for a step-by-step
answer (`formats.to_cot_question`: the short-answer instruction replaced, or the request
appended); --prompt as-is keeps the question. A record with several questions gives ids
`<id>-q<k>` (k from 0); the image, when there is one, stays with every question.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data.converters.common import Job, Skip, convert_file, relative_image, turns
from sicog.data.formats import strip_image_token, to_cot_question, with_image_token
from sicog.data.records import record_id

DESCRIPTION = """\
Q&A records (LLaVA layout) -> a question pool without answers, one record per question, in the
CoT prompt variant (--prompt cot) or as asked (--prompt as-is).
"""

PROMPTS = ("cot", "as-is")


@dataclass
class QuestionsConfig:
    """Settings of `sicog convert questions`."""

    data: str | None = setting(None, "question-answer records, .json or .jsonl", required=True)
    out: str | None = setting(None, "output question pool, .jsonl", required=True)
    prompt: str = setting("cot", "cot: ask for a step-by-step answer; as-is: keep the question", choices=PROMPTS)
    image_folder: str | None = setting(None, "when given, every image must exist inside it (else the record is "
                                             "skipped and counted)")
    progress: bool = setting(True, "no progress bar", invert="--no-progress")
    overwrite: bool = setting(False, "replace an output made with other settings")


def convert_record(rec: dict, where: str, prompt: str, image_folder: str | None) -> dict[str, list[dict]]:
    convs = turns(rec)
    questions = [strip_image_token(t["value"]) for t in convs if t["from"] == "human"]
    if not questions or not all(questions):
        raise Skip("no-question", "a human turn without text (or none)")
    image = relative_image(rec, image_folder, where, required=False)
    rid = record_id(rec, where.rsplit(":", 1)[-1])
    out = []
    for k, q in enumerate(questions):
        text = to_cot_question(q) if prompt == "cot" else q
        r = {"id": rid if len(questions) == 1 else f"{rid}-q{k}"}
        if image is not None:
            r["image"] = image
        r["conversations"] = [{"from": "human", "value": with_image_token(text) if image else text}]
        out.append(r)
    return {"--out": out}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, QuestionsConfig)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(QuestionsConfig, args)
    job = Job("questions", cfg.data, {"--out": cfg.out},
              settings={k: v for k, v in asdict(cfg).items() if k not in ("data", "overwrite", "progress")},
              overwrite=cfg.overwrite, progress=cfg.progress, inputs={"--image-folder": cfg.image_folder})
    convert_file(job, lambda rec, where: convert_record(rec, where, cfg.prompt, cfg.image_folder))
    return 0
