"""The output folder of `sicog annotate cod`: a journal while it runs, four files when it is done.

- `journal.parts/rank-0.jsonl` (sicog.utils.shards.PartWriter): one flushed line per finished item,
  `{"id", "ok", "cod", "description" | "error", "attempts", "usage"}`. It is the run's memory:
  a rerun skips every id in it, so a kill at any moment loses at most the requests in flight
  (a line torn by the kill is cut off and its item asked again) and never repeats a finished
  one. An item that failed and later succeeded (--retry-failures) counts as succeeded; the tokens
  of both lines count in the summary (both were paid for).
- `run.json`: the settings that decide the annotations; a rerun with others is refused unless
  --overwrite, which removes the files named here (nothing else in the folder).
- `cod.jsonl`, `dd.jsonl`, `failures.jsonl` (in input order, written atomically from the
  journal) and then `summary.json` (counts, token usage and cost summed over every journal line,
  settings, the masked config):
  each item is in exactly one of cod/dd (both) or failures.

Settings, finished and --overwrite follow the output protocol of every command
(sicog.utils.resumable), on this folder's `layout`: its journal is a part that stays.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from sicog.data.formats import cod_question, with_image_token
from sicog.stages.annotation.config import AnnotateConfig
from sicog.stages.annotation.items import CaptionItem
from sicog.utils import resumable
from sicog.utils.io import SicogError, iter_jsonl, write_json, write_jsonl
from sicog.utils.lock import check_writable
from sicog.utils.paths import check_outputs_apart
from sicog.utils.shards import PartWriter, parts_dir

logger = logging.getLogger(__name__)

COD_FILE, DD_FILE, FAILURES_FILE, SUMMARY_FILE, RUN_FILE = (
    "cod.jsonl", "dd.jsonl", "failures.jsonl", "summary.json", "run.json")
JOURNAL = "journal"  # the PartWriter name: the lines live in journal.parts/rank-0.jsonl
DD_ID_SUFFIX = "-dd"  # cod and dd records of one image get different ids: the two files can be mixed


def claim_output(cfg: AnnotateConfig) -> None:
    """--out apart from the inputs and writable, before anything is read or written."""
    check_outputs_apart({"--out": cfg.out}, {"--data": cfg.data, "--image-folder": cfg.image_folder})
    check_writable(cfg.out, "--out", "dir")


def layout(out: str | Path) -> resumable.Layout:
    """The folder's files in the terms of sicog.utils.resumable (the journal: parts that stay)."""
    out = Path(out)
    return resumable.Layout(out=out, summary=out / SUMMARY_FILE, parts=parts_dir(out / JOURNAL),
                            run_file=out / RUN_FILE, outputs=tuple(out / n for n in (COD_FILE, DD_FILE, FAILURES_FILE,
                                                                                    SUMMARY_FILE)), journal=True)


def recorded_settings(out: str | Path) -> dict | None:
    """The settings --out was started with (its run.json), None when there is none (or unreadable)."""
    return resumable.recorded_settings(layout(out))


def prepare(cfg: AnnotateConfig, want: dict) -> dict | None:
    """Check --out against these settings: the summary of a finished run with nothing left to do,
    else None (after --overwrite has cleared another run's files, and `want` is recorded)."""
    files = layout(cfg.out)
    done = resumable.finished(files, want, cfg.overwrite)  # a summary of other settings: refused here
    if done is None and cfg.overwrite:
        resumable.clear(files, want)
    resumable.check_parts(files, want, write=True)  # a journal of other settings: refused here
    if done is not None and not (cfg.retry_failures and done.get("failed")):
        return done
    return None


def _journal_lines(out: str | Path):
    part = parts_dir(Path(out) / JOURNAL) / "rank-0.jsonl"
    if part.exists():
        for _lineno, rec in iter_jsonl(part, torn_tail_ok=True):
            yield rec


def read_journal(out: str | Path) -> dict[str, dict]:
    """Finished items by id; a success wins over a failure of the same id."""
    entries: dict[str, dict] = {}
    for rec in _journal_lines(out):
        if rec["ok"] or not entries.get(rec["id"], {}).get("ok"):
            entries[rec["id"]] = rec
    return entries


def journal_writer(out: str | Path) -> PartWriter:
    """The appender of journal lines (repairs a line torn by a kill first)."""
    return PartWriter(Path(out) / JOURNAL, 0)


def cod_record(item: CaptionItem, cod: str) -> dict:
    """Question + " Describe the image step by step." -> the five steps."""
    return {"id": item.id, "image": item.image, "conversations": [
        {"from": "human", "value": with_image_token(cod_question(item.question))},
        {"from": "gpt", "value": cod}]}


def dd_record(item: CaptionItem, description: str) -> dict:
    """The question as asked -> the step-5 description."""
    return {"id": item.id + DD_ID_SUFFIX, "image": item.image, "conversations": [
        {"from": "human", "value": with_image_token(item.question)},
        {"from": "gpt", "value": description}]}


def failure_kind(error: str) -> str:
    """What a failure is, for counting: "HTTP 500", "timeout", "InvalidAnswer", "DataError"."""
    return error.split(":", 1)[0].strip()[:40]


def paid_usage(out: str | Path) -> dict:
    """Token usage summed over every journal line of every run: an item failed and then asked again
    (--retry-failures) has one line per run, each paid for."""
    keys = ("prompt_tokens", "completion_tokens", "answered_requests")
    usage = dict.fromkeys(keys, 0)
    for rec in _journal_lines(out):
        for k in keys:
            usage[k] += int(rec.get("usage", {}).get(k, 0))
    return usage


def cost(cfg: AnnotateConfig, prompt_tokens: float, completion_tokens: float) -> float | None:
    """The price of these tokens at --price-per-1k-input/-output (None without prices)."""
    if not (cfg.price_per_1k_input or cfg.price_per_1k_output):
        return None
    return round(prompt_tokens / 1000 * cfg.price_per_1k_input
                 + completion_tokens / 1000 * cfg.price_per_1k_output, 4)


def write_outputs(cfg: AnnotateConfig, items: list[CaptionItem], this_run: dict, want: dict,
                  config: dict) -> dict:
    """cod / dd / failures from the journal, in input order, then the summary (written last)."""
    out = Path(cfg.out)
    entries = read_journal(out)
    missing = [it.id for it in items if it.id not in entries]
    if missing:
        raise SicogError(f"{out}: {len(missing)} item(s) unfinished (first: {missing[0]!r}); run the same "
                         "command again to finish them")
    ok = [(it, entries[it.id]) for it in items if entries[it.id]["ok"]]
    failed = [(it, entries[it.id]) for it in items if not entries[it.id]["ok"]]
    write_jsonl(out / COD_FILE, (cod_record(it, e["cod"]) for it, e in ok))
    write_jsonl(out / DD_FILE, (dd_record(it, e["description"]) for it, e in ok))
    write_jsonl(out / FAILURES_FILE, ({"id": it.id, "where": it.where, "image": it.image, "error": e["error"],
                                       "attempts": e["attempts"]} for it, e in failed))
    usage = paid_usage(out)
    summary = {
        "out": str(out), "data": cfg.data, "model": cfg.model, "items": len(items), "annotated": len(ok),
        "failed": len(failed), "failures_by_kind": dict(Counter(failure_kind(e["error"]) for _, e in failed)),
        "usage": usage, "cost": cost(cfg, usage["prompt_tokens"], usage["completion_tokens"]),
        "this_run": this_run, "settings": want, "config": config,
    }
    write_json(out / SUMMARY_FILE, summary)
    return summary
