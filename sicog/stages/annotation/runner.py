"""Orchestration of `sicog annotate cod`: validate, claim, resume, annotate concurrently, write.

1. The whole data file is read and checked first (file:line errors), --out is checked apart from
   the inputs and writable, and `--out.lock` keeps a second writer off it (sicog.utils.lock).
2. `outputs.prepare` compares the settings with the folder's `run.json` and `summary.json` (the
   protocol of sicog.utils.resumable): same settings continue (a finished run is a no-op), other
   settings are refused unless --overwrite.
3. The items not in the journal are annotated with at most --concurrency requests in flight
   (asyncio; one event loop, so journal lines are written one at a time). Each item ends in the
   journal as a success or as a failure with its error; a missing or unreadable image is a
   failure without a request. A journal that cannot be written (a full disk) stops new requests;
   the answers of those in flight and of the failed line are printed, not lost (exit 2). A 401/403/404 stops the run: every other item would fail alike; so
   do --stop-after-identical-4xx items in a row refused with the same 4xx (the server's message
   is quoted).
4. cod.jsonl, dd.jsonl, failures.jsonl and summary.json are written from the journal.

The API key is read from the variable --api-key-env names, registered as a secret (redacted from
every log line and error) and handed to the HTTP client only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import asdict

from sicog.config_flags import check_config
from sicog.data.records import DataError
from sicog.stages.annotation import outputs
from sicog.stages.annotation.client import CodClient, Outcome, RefusalStreak, Usage, describe, is_fatal
from sicog.stages.annotation.config import AnnotateConfig
from sicog.stages.annotation.items import CaptionItem, image_data_url, image_size, read_items
from sicog.stages.annotation.prompt import (
    PROMPT_TOKENS,
    estimate_image_tokens,
    estimate_text_tokens,
    prompt_fingerprint,
    user_text,
)
from sicog.utils.io import SicogError, dumps, file_fingerprint
from sicog.utils.lock import as_recorded, output_lock
from sicog.utils.secrets import mask_secrets, register_secret

logger = logging.getLogger(__name__)

def input_tokens(item: CaptionItem, size: tuple[int, int]) -> int:
    """Estimated prompt tokens of one request: system prompt, text, image."""
    return PROMPT_TOKENS + estimate_text_tokens(user_text(item.question, item.caption)) + estimate_image_tokens(*size)


def run_annotation(cfg: AnnotateConfig) -> dict:
    """Run (or resume) one annotation job; returns the summary (the estimate under --dry-run)."""
    check_config(cfg)
    outputs.claim_output(cfg)
    items = read_items(cfg.data)
    api_key = os.environ.get(cfg.api_key_env) or None
    register_secret(api_key)
    want = as_recorded(cfg.determining(file_fingerprint(cfg.data), prompt_fingerprint()))
    if cfg.dry_run:
        return dry_run(cfg, items, want)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("httpx", "httpx2"):  # one INFO line per request would bury the progress bar
            logging.getLogger(name).setLevel(logging.WARNING)
    with output_lock(cfg.out):
        finished = outputs.prepare(cfg, want)
        if finished is not None:
            logger.info("%s is finished with these settings (%d annotated, %d failed): nothing to do",
                        cfg.out, finished.get("annotated", 0), finished.get("failed", 0))
            return finished
        done = outputs.read_journal(cfg.out)
        todo = [it for it in items if it.id not in done or (cfg.retry_failures and not done[it.id]["ok"])]
        logger.info("%d items: %d done earlier, %d to annotate with %s at %s (%d in flight)", len(items),
                    len(items) - len(todo), len(todo), cfg.model, cfg.base_url, cfg.concurrency)
        if api_key is None:
            logger.info("no API key in $%s: sending requests without one", cfg.api_key_env)
        this_run = asyncio.run(_annotate_all(cfg, todo, api_key)) if todo else {"items": 0}
        summary = outputs.write_outputs(cfg, items, this_run, want, mask_secrets(asdict(cfg)))
    logger.info("wrote %s: %d annotated, %d failed (%s); tokens: %d in, %d out%s", cfg.out, summary["annotated"],
                summary["failed"], summary["failures_by_kind"] or "none", summary["usage"]["prompt_tokens"],
                summary["usage"]["completion_tokens"],
                f"; cost {summary['cost']}" if summary["cost"] is not None else "")
    return summary


def dry_run(cfg: AnnotateConfig, items: list[CaptionItem], want: dict) -> dict:
    """Requests, tokens and cost of what a run would do now; calls nothing, writes nothing. Only
    items that could be sent count: one whose image is missing or unreadable would fail without a
    request, so it is counted apart, by reason (with its first record's file:line)."""
    done = outputs.read_journal(cfg.out) if outputs.recorded_settings(cfg.out) == want else {}
    todo = [it for it in items if it.id not in done or (cfg.retry_failures and not done[it.id]["ok"])]
    tokens_in, sendable = 0, 0
    not_sendable: Counter = Counter()
    examples: dict[str, str] = {}
    for it in todo:
        size, why = image_size(it, cfg.image_folder, cfg.allow_images_outside_folder)
        if why is not None:
            not_sendable[why] += 1
            examples.setdefault(why, it.where)
            continue
        sendable += 1
        tokens_in += input_tokens(it, size)
    tokens_out = sendable * cfg.max_tokens
    estimate = {"items": len(items), "done_earlier": len(items) - len(todo), "requests": sendable,
                "not_sendable": dict(not_sendable), "not_sendable_examples": examples,
                "input_tokens_estimate": tokens_in, "output_tokens_at_most": tokens_out,
                "cost_at_most": outputs.cost(cfg, tokens_in, tokens_out), "settings": want}
    unsent = sum(not_sendable.values())
    print(f"dry run: {sendable} request(s) for {len(items)} item(s) ({len(items) - len(todo)} done earlier"
          + (f"; {unsent} item(s) not sendable ({', '.join(f'{k}: {n}' for k, n in not_sendable.items())}), "
             f"first: {', '.join(f'{k} at {w}' for k, w in examples.items())}" if unsent else "")
          + f"); about {tokens_in} input tokens (4 characters a token, GPT-4o's image rule) and at most "
          f"{tokens_out} output tokens (--max-tokens {cfg.max_tokens} each), retries not counted"
          + (f"; cost at most {estimate['cost_at_most']}" if estimate["cost_at_most"] is not None else ""))
    return estimate


async def _annotate_one(client: CodClient, cfg: AnnotateConfig, item: CaptionItem) -> Outcome:
    try:
        url, size = await asyncio.to_thread(image_data_url, item, cfg.image_folder, cfg.allow_images_outside_folder)
    except DataError as e:
        return Outcome(error=f"DataError: {e}")
    est = input_tokens(item, size) + cfg.max_tokens
    return await client.annotate(item.id, item.question, item.caption, url, est)


def _unjournaled(error: SicogError, entries: list[dict], journal) -> None:
    """Stop on a journal that cannot be written (a full disk), losing no paid answer: the answers
    it could not take go to stderr as journal lines, to be appended to it once there is room (a
    rerun then skips them; not appended, they are asked again)."""
    if entries:
        sys.stderr.write(f"--- {len(entries)} paid answer(s) not in {journal}: append these lines to it "
                         f"once there is room ---\n" + "".join(dumps(e) + "\n" for e in entries) + "---\n")
        sys.stderr.flush()
    raise SicogError(f"{journal}: cannot write: {getattr(error, 'reason', error)}; {len(entries)} paid answer(s) "
                     f"could not be journaled: printed above as journal lines, append them to it once there is "
                     f"room (else the next run asks for them again), then run the same command again") from None


async def _annotate_all(cfg: AnnotateConfig, todo: list[CaptionItem], api_key: str | None) -> dict:
    """Annotate `todo` into the journal; returns this run's counts."""
    from tqdm.auto import tqdm

    client = CodClient(cfg, api_key)
    streak = RefusalStreak(cfg.stop_after_identical_4xx)
    usage, counts = Usage(), {"annotated": 0, "failed": 0, "requests_sent": 0}
    pending = iter(todo)  # shared by the workers: each item is taken exactly once
    bar = tqdm(total=len(todo), unit="item", desc="annotate", dynamic_ncols=True, disable=not cfg.progress,
               smoothing=0.05)
    started = time.perf_counter()

    full: list[SicogError] = []  # the journal's disk error, once met
    unjournaled: list[dict] = []  # paid answers the journal could not take, kept for the error

    def journal(writer, entry: dict) -> None:
        """Write `entry`; after a disk error it (and every later one) is kept for `_unjournaled`."""
        if not full:
            try:
                writer.write(entry)
                return
            except SicogError as e:  # a full disk (PartWriter names the journal)
                full.append(e)
        unjournaled.append(entry)

    async def worker(writer) -> None:
        for item in pending:
            if full:  # no new request; those in flight finish, their answers are kept
                return
            outcome = await _annotate_one(client, cfg, item)
            entry = {"id": item.id, "ok": outcome.error is None, "attempts": outcome.attempts,
                     "usage": outcome.usage.as_dict()}
            if outcome.error is None:
                entry.update(cod=outcome.cod, description=outcome.description)
                counts["annotated"] += 1
            else:
                entry["error"] = outcome.error
                counts["failed"] += 1
                logger.warning("%s (%s) failed after %d request(s): %s", item.id, item.where, outcome.attempts,
                               outcome.error)
            journal(writer, entry)
            counts["requests_sent"] += outcome.attempts  # retries included
            usage.add(outcome.usage)
            bar.update(1)
            bar.set_postfix(ok=counts["annotated"], failed=counts["failed"],
                            tok=usage.prompt_tokens + usage.completion_tokens, refresh=False)
            if streak.add(outcome):
                raise SicogError(
                    f"{streak.count} requests in a row were refused with the same answer ({outcome.error}); "
                    f"stopping, as every item would fail alike. Check --model (does it accept images?), "
                    f"--max-tokens and --base-url; the refused items are in the journal of {cfg.out}: rerun "
                    "with --retry-failures once fixed (--stop-after-identical-4xx sets the count, 0: never stop)")

    writer = outputs.journal_writer(cfg.out)
    tasks = [asyncio.create_task(worker(writer)) for _ in range(min(cfg.concurrency, len(todo)))]
    try:
        await asyncio.gather(*tasks)
    except BaseException as exc:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if is_fatal(exc):
            raise SicogError(f"{cfg.base_url} refused the run ({describe(exc)}); check --base-url, --model "
                             f"and the key in ${cfg.api_key_env}. Finished items are kept: run the same "
                             "command again to continue") from None
        raise
    finally:
        bar.close()
        await client.close()
        try:
            writer.close()
        except SicogError as e:  # its last line may be torn: the next run cuts it off
            if not full:
                full.append(e)
        if full:
            _unjournaled(full[0], unjournaled, writer.path)
    seconds = time.perf_counter() - started
    return {"items": len(todo), **counts, **usage.as_dict(), "seconds": round(seconds, 3),
            "items_per_s": round(len(todo) / seconds, 3) if seconds else None}
