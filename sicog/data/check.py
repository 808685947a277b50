"""`sicog data check FILE`: is a data file ready for training? One summary, file:line for each problem.

Checks every record (or the first --limit), streaming (a JSON list or JSON Lines, told from the
content; memory grows by a few dozen bytes per record, for the repeats): JSON syntax, the LLaVA
schema (`records.validate_training_record`; --unlabeled accepts records that stop after a human
turn), the `<image>` placeholder exactly as training reads it (`chat.to_messages`: an image
record may omit it, training then puts the image first; a placeholder in a text-only record, in
a later turn or twice is a problem), the image inside --image-folder (unless
--allow-images-outside-folder), present and decodable, repeated ids and repeated records (same
image and conversation), and with
--model the token length of each record with that checkpoint's processor and chat template (image
tokens included, as training counts them): a histogram and every record over --max-length.
Exit status 0 when nothing is wrong, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sicog.config_flags import add_config_arguments, config_from_args, setting
from sicog.data import slices
from sicog.data.chat import to_messages
from sicog.data.images import load_image, resolve_image
from sicog.data.records import DataError, iter_json_objects, validate_training_record
from sicog.utils.io import SicogError

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Check a LLaVA data file: usage: sicog data check FILE --image-folder D [--model CKPT] [flags]
(and `sicog data disjoint A B`: do two files share a record?)

Schema, images (inside the folder, present, decodable), <image> placeholders, repeated ids and
records, and with --model a token-length histogram with that checkpoint's processor and how many
records exceed --max-length. Every problem is listed as file:line; exit status 1 when there is any.
"""

BINS = (256, 512, 1024, 2048, 4096, 8192)


@dataclass
class DataCheckConfig:
    """Settings of `sicog data check`."""

    file: str | None = setting(None, "the data file", cli=False)
    image_folder: str | None = setting(None, "folder the image paths are relative to")
    model: str | None = setting(None, "checkpoint folder whose processor counts tokens (none: no length check)")
    max_length: int = setting(2048, "longest record in tokens (data.max_length of the training config)", min=1)
    limit: int = setting(0, "check only the first N records (0: all): a quick look at a 665K file", min=0)
    unlabeled: bool = setting(False, "records may stop after their human turn (sampling inputs)")
    allow_images_outside_folder: bool = setting(False, "accept image paths that leave --image-folder (as "
                                                       "training does with data.allow_images_outside_folder)")
    show: int = setting(20, "problems listed per kind (all are counted)", min=0)
    progress: bool = setting(True, "no progress bar", invert="--no-progress")


class Report:
    """Problems by kind: every one counted, the first `keep` of each kind kept with where they are
    (a 665K file with 100K repeats must not hold 100K messages)."""

    def __init__(self, keep: int):
        self.keep = keep
        self.counts: Counter = Counter()
        self.problems: dict[str, list[str]] = {}

    def add(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        listed = self.problems.setdefault(kind, [])
        if len(listed) < self.keep:
            listed.append(message)

    @property
    def count(self) -> int:
        return sum(self.counts.values())


def _check_images(rec: dict, where: str, cfg: DataCheckConfig, report: Report,
                  max_pixels: int | None = None) -> tuple[int, int] | None:
    """Report the record's placeholder and image problems; the image's size when it decodes."""
    try:  # the placeholders exactly as training reads them (SupervisedDataset's first check)
        to_messages(rec, where)
    except DataError as e:
        report.add("placeholders", str(e))
    image = rec.get("image")
    if image:
        try:
            return load_image(resolve_image(cfg.image_folder, image, where, cfg.allow_images_outside_folder), where,
                              max_pixels).size
        except DataError as e:
            report.add("images", str(e))
    return None


#: the processor files that may name their own code (`auto_map`: a uhd checkpoint's processor)
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def load_processor(folder: str):
    """The processor of checkpoint `folder`, as stock transformers loads it: a uhd checkpoint's
    processor is code shipped in the folder (`auto_map`), loaded with trust_remote_code (the folder
    is the user's own --model); SicogError naming the folder when it is missing or does not load."""
    path = Path(folder)
    if not path.is_dir():
        raise SicogError(f"--model {folder}: checkpoint folder not found")
    remote = False
    for name in _PROCESSOR_FILES:
        try:
            remote |= "auto_map" in json.loads((path / name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            raise SicogError(f"--model {path / name}: not a readable JSON file: {e}") from None
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(str(path), trust_remote_code=remote)
    except Exception as e:  # transformers raises OSError, ValueError, KeyError ... for a bad folder
        raise SicogError(f"--model {folder}: cannot load its processor: {type(e).__name__}: {e}") from None


def _histogram(lengths: list[int]) -> dict[str, int]:
    hist: Counter = Counter()
    for n in lengths:
        top = next((b for b in BINS if n <= b), None)
        hist[f"<= {top}" if top else f"> {BINS[-1]}"] += 1
    return {k: hist[k] for k in [f"<= {b}" for b in BINS] + [f"> {BINS[-1]}"] if hist[k]}


def check_file(cfg: DataCheckConfig) -> dict:
    """The summary of one file (see the module docstring)."""
    if cfg.image_folder is not None and not Path(cfg.image_folder).is_dir():
        raise SicogError(f"--image-folder {cfg.image_folder}: folder not found")
    processor = None
    if cfg.model:
        from sicog.data.chat import encode_conversation

        processor = load_processor(cfg.model)
    report, lengths = Report(max(cfg.show, 20)), []
    ids: dict[str, int] = {}  # id -> N of its first record (file:N)
    contents: dict[bytes, int] = {}  # digest of (image, conversation) -> N of its first record
    checked = 0
    from tqdm.auto import tqdm

    records = tqdm(iter_json_objects(cfg.file, yield_errors=True), unit="rec", desc="check", dynamic_ncols=True,
                   total=cfg.limit or None, disable=not cfg.progress)
    for lineno, rec in records:
        if cfg.limit and checked >= cfg.limit:
            break
        checked += 1
        where = f"{cfg.file}:{lineno}"
        if isinstance(rec, DataError):
            report.add("json", str(rec))
            continue
        try:
            validate_training_record(rec, where, require_answer=not cfg.unlabeled)
        except DataError as e:
            report.add("schema", str(e))
            continue
        if "id" in rec:
            rid = str(rec["id"])
            if rid in ids:
                report.add("duplicate ids", f"{where}: key 'id': {rid!r} repeats {cfg.file}:{ids[rid]}")
            ids.setdefault(rid, lineno)
        digest = hashlib.sha256(json.dumps([rec.get("image"), rec["conversations"]]).encode()).digest()[:16]
        if digest in contents:
            report.add("duplicate records", f"{where}: same image and conversation as {cfg.file}:{contents[digest]}")
        contents.setdefault(digest, lineno)
        size = _check_images(rec, where, cfg, report, slices.max_pixels_of(processor))
        if processor is not None:
            image_text = None
            if rec.get("image") and slices.slices_images(processor):
                if size is None:  # a sliced image's tokens depend on its size: reported above, not measured
                    continue
                image_text = slices.layout_for_size(processor, *size)
            try:
                n = len(encode_conversation(processor, rec, max_length=1 << 30, where=where,
                                            image_text=image_text).input_ids)
            except SicogError as e:
                report.add("tokens", str(e))
                continue
            lengths.append(n)
            if n > cfg.max_length:
                report.add("too long", f"{where}: {n} tokens, over --max-length {cfg.max_length}")
    records.close()
    if not checked:  # "no problems found" would pass a file that holds no training data at all
        raise SicogError(f"{cfg.file}: no record in it (an empty file, or blank lines only): nothing to train on")
    return {"file": cfg.file, "records_checked": checked, "limited": bool(cfg.limit and checked >= cfg.limit),
            "problems": dict(report.counts), "details": report.problems,
            "token_lengths": ({"max": max(lengths, default=0), "histogram": _histogram(lengths),
                               "over_max_length": sum(n > cfg.max_length for n in lengths)}
                              if processor is not None else None)}


def print_summary(summary: dict, show: int) -> None:
    print(f"{summary['file']}: {summary['records_checked']} record(s) checked"
          + (" (--limit reached)" if summary["limited"] else ""))
    tokens = summary["token_lengths"]
    if tokens is not None:
        bins = ", ".join(f"{k}: {v}" for k, v in tokens["histogram"].items()) or "no record measured"
        print(f"token lengths: max {tokens['max']}; {bins}; over --max-length: {tokens['over_max_length']}")
    if not summary["problems"]:
        print("no problems found")
    for kind, items in summary["details"].items():
        total = summary["problems"][kind]
        print(f"{kind}: {total}")
        for line in items[:show]:
            print(f"  {line}")
        if total > min(show, len(items)):
            print(f"  ... {total - min(show, len(items))} more")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `sicog data check`."""
    p.add_argument("file", metavar="FILE", help="the data file to check (a JSON list or JSON Lines)")
    add_config_arguments(p, DataCheckConfig)


def run(args: argparse.Namespace) -> int:
    """Check the file; exit status 1 when there is a problem."""
    import dataclasses

    cfg = dataclasses.replace(config_from_args(DataCheckConfig, args), file=args.file)
    summary = check_file(cfg)
    print_summary(summary, cfg.show)
    return 1 if summary["problems"] else 0
