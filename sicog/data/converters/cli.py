"""`sicog convert NAME`: one converter per public source, each a module with the contract of the
top-level commands (sicog/cli.py): DESCRIPTION, add_arguments(parser), run(args) -> exit status.

Add a converter by adding its module to CONVERTERS. Every converter module is imported to build
this command's parser, so a converter keeps heavy imports (torch, transformers) inside run().
"""

from __future__ import annotations

import argparse

from sicog.utils.subcommands import add_subcommands, run_subcommand

DESCRIPTION = """\
Convert public datasets into sicog's LLaVA JSONL: usage: sicog convert NAME [flags]
(sicog convert NAME --help for its flags). Inputs (JSON list, JSON Lines or parquet) are streamed
and never modified; image paths stay relative to an image folder; a repeated id becomes <id>#2,
...; every skipped record and every change to a kept one is counted by reason in OUT.summary.json.
"""

CONVERTERS = {
    "llava-cot": ("sicog.data.converters.llava_cot", "LLaVA-CoT -> structured-CoT records + short answers"),
    "llava-pretrain": ("sicog.data.converters.llava_pretrain", "LLaVA-Pretrain / ReCap-558K -> alignment "
                                                               "records, or the unlabeled image pool"),
    "allava-caption": ("sicog.data.converters.allava", "ALLaVA Caption-VFLAN/LAION -> `sicog annotate cod` input"),
    "llava-sft": ("sicog.data.converters.llava_sft", "LLaVA-665K -> checked SFT records"),
    "questions": ("sicog.data.converters.questions", "Q&A records -> question pool (answers stripped)"),
    "llava-uhd": ("sicog.model.uhd.convert", "the authors' LLaVA-UHD v1 / SICOG checkpoint -> a sicog uhd folder"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One sub-command per converter."""
    add_subcommands(p, CONVERTERS, dest="converter", metavar="NAME", help="the source to convert")


def run(args: argparse.Namespace) -> int:
    """Run the named converter."""
    return run_subcommand(args)
