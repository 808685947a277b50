"""The `sicog` command: one subcommand per step of the loop.

Each subcommand lives in its own module, which defines

    DESCRIPTION: str                      first line of its --help
    add_arguments(parser) -> None         its flags (every flag with a help text)
    run(args) -> int                      the exit status

Modules are imported lazily so that `sicog world --help` does not import torch. Where argument
parsing and the work live: docs/architecture.md, "A command".

Plugins fill the framework's extension points (sicog.pipeline.hooks, sicog.eval.captions) before
a command runs: the built-in demo (sicog.demo.hooks) and any package that declares an entry point
in the group `sicog.plugins` (a callable taking no arguments).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from sicog.utils.io import SicogError
from sicog.utils.secrets import install_log_redaction, redact

SUBCOMMANDS = {
    "demo": ("sicog.demo.cli", "whole SICOG loop on the synthetic world, with ablation arms"),
    "world": ("sicog.demo.world.cli", "write a synthetic visual world: images, annotations, benchmark"),
    "train": ("sicog.stages.train", "one training stage (warm-up, align, pre-train, SFT) from YAML"),
    "dpo": ("sicog.stages.dpo.stage", "preference optimisation (DPO / IPO) on preference pairs, from YAML"),
    "pairs": ("sicog.stages.pairs", "preference pairs from curated records and corrupted-image candidates"),
    "sample": ("sicog.stages.sample", "step 2: sample N candidate captions / CoT answers"),
    "serve": ("sicog.serve", "serve a checkpoint through vLLM (OpenAI-compatible API) for sample --backend openai"),
    "curate": ("sicog.stages.curate", "step 3: self-consistency curation of candidates"),
    "evaluate": ("sicog.eval.cli", "evaluate a checkpoint on a multiple-choice / caption benchmark"),
    "annotate": ("sicog.stages.annotate", "step 1: CoD annotation through an OpenAI-compatible vision API"),
    "convert": ("sicog.data.converters.cli", "public datasets (LLaVA-CoT, LLaVA-558K, 665K, ...) to sicog's records"),
    "data": ("sicog.data.cli", "check a data file; do two files share records; overlap with benchmarks"),
    "run": ("sicog.pipeline.cli", "run the four steps (and rounds) from one pipeline YAML, resumable"),
}


BUILTIN_PLUGINS = ("sicog.demo.hooks",)
_plugins_loaded = False


def load_plugins() -> None:
    """Call `register()` of the built-in plugins and every `sicog.plugins` entry point (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for name in BUILTIN_PLUGINS:
        importlib.import_module(name).register()
    from importlib.metadata import entry_points

    for ep in entry_points(group="sicog.plugins"):
        ep.load()()


def configure_logging(verbose: bool = False) -> None:
    """Log to stderr with the rank in every line when running under a launcher."""
    rank = os.environ.get("RANK")
    prefix = f"[rank {rank}] " if rank is not None and os.environ.get("WORLD_SIZE", "1") != "1" else ""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    install_log_redaction()  # no log line shows a secret value (sicog.utils.secrets)
    sys.excepthook = _redacting_excepthook


def _redacting_excepthook(exc_type, exc, tb) -> None:
    """An uncaught exception's traceback, printed as Python would but with secret values redacted."""
    import traceback

    sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))


def build_parser(load_subcommand: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; the flags of `load_subcommand` are loaded (others stay lazy)."""
    parser = argparse.ArgumentParser(
        prog="sicog",
        description="SICOG: a multimodal LLM improves itself by pre-training on data it "
        "generated (sample) and selected by self-consistency (curate).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                        help="set by the deepspeed launcher (the process's rank on its node); "
                        "not needed otherwise")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, summary) in SUBCOMMANDS.items():
        if name == load_subcommand:
            module = importlib.import_module(module_name)
            p = sub.add_parser(name, help=summary, description=module.DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
            module.add_arguments(p)
            p.set_defaults(_module=module)
        else:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sicog` console script and of `python -m sicog`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(args.verbose)
    try:
        load_plugins()
        return int(args._module.run(args) or 0)
    except SicogError as e:
        message = redact(str(e))  # an error may quote a config, a log tail or a server's reply
        logging.getLogger("sicog").error("%s", message)
        print(f"sicog {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sicog {args.command}: interrupted", file=sys.stderr)
        return 130
