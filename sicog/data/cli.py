"""`sicog data NAME`: checks of data files, one sub-command a module with the contract of the
top-level commands (sicog/cli.py): DESCRIPTION, add_arguments(parser), run(args) -> exit status.

Add a check by adding its module to COMMANDS.
"""

from __future__ import annotations

import argparse

from sicog.utils.subcommands import add_subcommands, run_subcommand

DESCRIPTION = """\
Check data files before training: usage: sicog data {check,disjoint,overlap} [flags]
(sicog data NAME --help for its flags). check: is a file ready for training (schema, images,
placeholders, repeats, token lengths); disjoint: do two files share a record (check and disjoint
exit with status 1 when they find one); overlap: training data against benchmarks.
"""

COMMANDS = {
    "check": ("sicog.data.check", "check a data file"),
    "disjoint": ("sicog.data.disjoint", "check that two data files share no record"),
    "overlap": ("sicog.data.overlap", "training data against benchmarks: duplicate images, near duplicates, "
                                      "overlapping questions"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One sub-command per check."""
    add_subcommands(p, COMMANDS, dest="data_command", metavar="{check,disjoint,overlap}", help="what to do")


def run(args: argparse.Namespace) -> int:
    """Run the named check."""
    return run_subcommand(args)
