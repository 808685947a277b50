"""A group of commands (`sicog data NAME`, `sicog convert NAME`): one sub-parser per module of a
registry {name: (module, one-line help)}, each module with the contract of the top-level commands
(sicog/cli.py): DESCRIPTION, add_arguments(parser), run(args) -> exit status."""

from __future__ import annotations

import argparse
import importlib


def add_subcommands(p: argparse.ArgumentParser, registry: dict[str, tuple[str, str]], *, dest: str, metavar: str,
                    help: str) -> None:
    """One sub-parser per entry of `registry` (its module imported now), dispatched by `run_subcommand`."""
    sub = p.add_subparsers(dest=dest, metavar=metavar, required=True, help=help)
    for name, (module_name, summary) in registry.items():
        module = importlib.import_module(module_name)
        c = sub.add_parser(name, help=summary, description=module.DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(c)
        c.set_defaults(_command=module)


def run_subcommand(args: argparse.Namespace) -> int:
    """Run the sub-command the flags named."""
    return int(args._command.run(args) or 0)
