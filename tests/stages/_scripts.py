"""Run a shell wrapper from a copy of the repository's script folders, with stub interpreters: one
at the copy's `.venv/bin/python` (when `venv`) and one named `python` on PATH. Each stub records
its name and argv, so a test sees which interpreter the wrapper chose and what it was given."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT_FOLDERS = ("scripts", "training_scripts", "recap_scripts", "training_data_annotation")


def _stub(path: Path, name: str, record: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\n{{ echo "{name}"; printf "%s\\n" "$@"; }} > "{record}"\n')
    path.chmod(0o755)


def run_from_copy(tmp_path: Path, script: str, env: dict[str, str], venv: bool) -> tuple[
        subprocess.CompletedProcess, str | None, list[str]]:
    """(result, "venv" | "path" | None for the interpreter that ran, its argv) of `bash COPY/script`,
    called from another folder, without $PYTHON set."""
    copy = tmp_path / "repo"
    shutil.rmtree(copy, ignore_errors=True)
    for folder in SCRIPT_FOLDERS:
        shutil.copytree(REPO / folder, copy / folder)
    record = tmp_path / "argv.txt"
    record.unlink(missing_ok=True)
    if venv:
        _stub(copy / ".venv" / "bin" / "python", "venv", record)
    _stub(tmp_path / "bin" / "python", "path", record)
    full = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path), **env}
    full.pop("PYTHON", None)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir(exist_ok=True)
    res = subprocess.run(["bash", str(copy / script)], env=full, capture_output=True, text=True, cwd=elsewhere,
                         timeout=60)
    lines = record.read_text().splitlines() if record.exists() else []
    return res, (lines[0] if lines else None), lines[1:]
