"""The reliability suite's harness: run a `sicog` command on bad input and check that it failed
cleanly - exit 2, the place at fault named on stderr, no output left behind, inputs unchanged.

A case is a `BadInput(name, argv, place, outputs)`: `argv` after `sicog` (paths may use `{tmp}`),
`place` a regex the error message must match (file:line, key, flag or path), `outputs` the paths
(relative to tmp) that must not exist afterwards. `snapshot(tmp)` / the assertion compare every
file under tmp except the declared outputs, byte for byte, before and after the run.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class BadInput:
    name: str
    argv: list[str]
    place: str  # regex that the error text must contain (the place at fault and what was expected)
    outputs: list[str] = field(default_factory=list)  # must not exist after the run (relative to tmp)
    env: dict[str, str] = field(default_factory=dict)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root (the inputs a failing command must leave unchanged)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_sicog(argv: list[str], tmp: Path, env: dict[str, str] | None = None, timeout: int = 300):
    full = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            **(env or {})}
    args = [a.replace("{tmp}", str(tmp)) for a in argv]
    return subprocess.run([sys.executable, "-m", "sicog", *args], cwd=tmp, env=full, capture_output=True,
                          text=True, timeout=timeout)


def assert_clean_failure(case: BadInput, tmp: Path) -> None:
    """Run `case` in tmp and check exit 2, the place named, no output, inputs unchanged."""
    before = snapshot(tmp)
    res = run_sicog(case.argv, tmp, case.env)
    err = res.stderr
    assert res.returncode == 2, f"{case.name}: exit {res.returncode}\n{err[-3000:]}"
    assert "Traceback" not in err, f"{case.name}: a traceback instead of a clear error\n{err[-3000:]}"
    assert re.search(case.place, err), f"{case.name}: the error does not name {case.place!r}:\n{err[-2000:]}"
    for out in case.outputs:
        assert not (tmp / out).exists(), f"{case.name}: output {out} left behind"
    after = {k: v for k, v in snapshot(tmp).items() if k in before}
    assert after == before, f"{case.name}: an input changed: " + ", ".join(
        k for k in before if after.get(k) != before[k])


def with_flags(base: list[str], **changes: str) -> list[str]:
    """`base` argv with flags replaced (`data="{tmp}/x.jsonl"`) or added (`temperature="-1"`)."""
    argv = list(base)
    for key, value in changes.items():
        flag = "--" + key.replace("_", "-")
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


def run_main(tmp: Path, capsys, *argv: str) -> tuple[int, str]:
    """`sicog ARGV` in this process ({tmp} filled in): (exit status, stderr)."""
    from sicog.cli import main

    rc = main([a.replace("{tmp}", str(tmp)) for a in argv])
    return rc, capsys.readouterr().err
