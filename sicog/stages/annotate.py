"""`sicog annotate`: step 1's minimal annotated set, written by a vision model behind an API.

The work is done by sicog.stages.annotation; this module holds the command-line interface.
"""

from __future__ import annotations

import argparse

from sicog.config_flags import add_config_arguments, config_from_args
from sicog.stages.annotation.config import AnnotateConfig

DESCRIPTION = """\
Step 1: annotate caption records through any OpenAI-compatible vision endpoint.

usage: sicog annotate cod [CONFIG.yaml] --data F --image-folder D --out DIR [flags]

cod: each record's image, question and original caption go to the model (GPT-4o, or a vLLM /
SGLang server of a vision model), which answers with a five-step Chain-of-Description. DIR gets
cod.jsonl (question + " Describe the image step by step." -> the five steps), dd.jsonl (the
question -> the step-5 description), failures.jsonl (items whose last try failed, with the
error) and summary.json (counts, token usage from the API, cost, settings).

Requests run concurrently (--concurrency) under optional per-minute limits; 429 / 5xx /
timeouts / connection errors and answers without the five steps in order are retried with
exponential backoff and jitter (Retry-After honoured); other 4xx are not. A step's text may
start on its header line ("Step 1: The image shows a red bus."); every step needs text. A
401/403/404 stops the run, and so do --stop-after-identical-4xx items in a row refused with the
same 4xx. Killed at any moment, the same command continues: finished items are never requested
again, none is lost or written twice; summary.json sums every paid try. The key is read from
$OPENAI_API_KEY (or the variable --api-key-env names) and never logged or written. --dry-run
estimates requests (sendable items only: missing images are counted apart), tokens and cost.
"""

TASKS = {"cod": "Chain-of-Description captions (+ direct descriptions) from caption records"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """`sicog annotate cod`: the flags are the fields of AnnotateConfig."""
    sub = p.add_subparsers(dest="task", metavar="TASK", required=True, help="what to annotate")
    for name, summary in TASKS.items():
        task = sub.add_parser(name, help=summary, description=DESCRIPTION,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        add_config_arguments(task, AnnotateConfig)


def run(args: argparse.Namespace) -> int:
    """Run `sicog annotate cod` with parsed flags (over CONFIG.yaml when given)."""
    from sicog.stages.annotation.runner import run_annotation

    run_annotation(config_from_args(AnnotateConfig, args))
    return 0
