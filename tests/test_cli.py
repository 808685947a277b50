"""Every subcommand has a --help that explains each flag; scripts pass `bash -n`."""

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from sicog.cli import SUBCOMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_flag_has_help(name):
    module = importlib.import_module(SUBCOMMANDS[name][0])
    assert module.DESCRIPTION.strip()
    parser = argparse.ArgumentParser(prog=f"sicog {name}")
    module.add_arguments(parser)
    parsers = [(f"sicog {name}", parser)]
    while parsers:  # sub-commands (`sicog annotate cod`, `sicog convert NAME`) too
        prog, p = parsers.pop()
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, \
                f"{prog}: {action.option_strings or action.dest} has no help text"
            if isinstance(action, argparse._SubParsersAction):
                parsers += [(f"{prog} {sub}", sp) for sub, sp in action.choices.items()]


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
    assert build_parser("train") is not None


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "sicog", "train", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0 and "--set" in out.stdout


def test_shell_scripts_parse():
    scripts = sorted(REPO.glob("*_scripts/*.sh")) + sorted(REPO.glob("quality_evaluation/*.sh"))
    scripts += sorted(REPO.glob("training_data_annotation/*.sh"))
    scripts += [REPO / ".ci" / "run", REPO / "scripts" / "install.sh", REPO / "scripts" / "python.sh",
                REPO / "scripts" / "gpu_check.sh"]
    assert len(scripts) >= 5
    for s in scripts:
        text = s.read_text()
        assert "set -euo pipefail" in text, s
        assert "pip install" not in text or s.name == "install.sh", s
        r = subprocess.run(["bash", "-n", str(s)], capture_output=True, text=True)
        assert r.returncode == 0, f"{s}: {r.stderr}"
