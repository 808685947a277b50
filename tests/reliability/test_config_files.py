"""Every command's CONFIG.yaml read strictly: a file that is not UTF-8 names the file, line and byte
offset; a repeated key (PyYAML would keep the last, silently) names both lines; exit 2, nothing
written, inputs unchanged (tests/reliability/_harness.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._harness import BadInput, assert_clean_failure

NOT_UTF8 = r"latin1\.yaml:2: not UTF-8 text \(byte 0xe9 at byte offset 13\)"
DUPLICATE = r"dup\.yaml:3: key 'seed' appears twice \(lines 1 and 3\)"
NESTED = r"nested\.yaml:3: key 'seed' appears twice \(lines 2 and 3\)"

CASES = [BadInput(f"{cmd.replace(' ', '_')}_{kind}", [*cmd.split(), f"{{tmp}}/{name}"], place)
         for cmd in ("sample", "curate", "evaluate", "pairs", "annotate cod", "train", "dpo", "run")
         for kind, name, place in (("not_utf8", "latin1.yaml", NOT_UTF8), ("duplicate_key", "dup.yaml", DUPLICATE))]
CASES += [BadInput(f"{cmd}_nested_duplicate_key", [cmd, "{tmp}/nested.yaml"], NESTED) for cmd in ("train", "dpo")]


@pytest.fixture
def tmp(tmp_path) -> Path:
    (tmp_path / "latin1.yaml").write_bytes(b"seed: 1\n# caf\xe9\n")
    (tmp_path / "dup.yaml").write_text("seed: 1\nout: x\nseed: 3\n")
    (tmp_path / "nested.yaml").write_text("training:\n  seed: 1\n  seed: 2\n")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_config_file_fails_cleanly(case, tmp):
    assert_clean_failure(case, tmp)
