"""`sicog data NAME`: checks of data files, one sub-command a module with the contract of the
top-level commands (sicog/cli.py): DESCRIPTION, add_arguments(parser), run(args) -> exit status.

Add a check by adding its module to COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib

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
    sub = p.add_subparsers(dest="data_command", metavar="{check,disjoint,overlap}", required=True, help="what to do")
    for name, (module_name, summary) in COMMANDS.items():
        module = importlib.import_module(module_name)
        c = sub.add_parser(name, help=summary, description=module.DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(c)
        c.set_defaults(_command=module)


def run(args: argparse.Namespace) -> int:
    """Run the named check."""
    return int(args._command.run(args) or 0)
