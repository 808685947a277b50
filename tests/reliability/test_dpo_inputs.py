"""`sicog dpo` on a bad pairs file: exit 2, file:line and the key named, nothing written, inputs
unchanged. In-process (the checks run before any model is built, so no subprocess is needed)."""

from __future__ import annotations

import json
import re

import pytest

from sicog.cli import main as sicog_main
from tests.stages.conftest import dpo_config, write_tiny_dataset, write_tiny_pairs

from ._harness import snapshot


def _rewrite(path, line: int, change) -> None:
    rows = path.read_text().splitlines()
    rows[line - 1] = change(rows[line - 1])
    path.write_text("\n".join(rows) + "\n")


def _field(key, value):
    def change(row):
        rec = json.loads(row)
        rec[key] = value
        return json.dumps(rec)
    return change


CASES = {
    "missing image": ("pairs", 3, _field("image", "images/nowhere.png"), r"pairs\.jsonl:3: key 'image': image not found"),
    "malformed line": ("pairs", 2, lambda row: row[:-5], r"pairs\.jsonl:2: .*JSON"),
    "wrong field type": ("pairs", 4, _field("chosen", 7), r"pairs\.jsonl:4: key 'chosen': .*not a string"),
    "chosen equals rejected": ("pairs", 1, _field("rejected", "The square is red."), r"pairs\.jsonl:1: key 'rejected'"),
    "bad held-out pair": ("heldout", 2, _field("prompt", ""), r"heldout\.jsonl:2: key 'prompt': is empty"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_pairs_file(tmp_path, capsys, case):
    pairs = write_tiny_pairs(tmp_path / "data", write_tiny_dataset(tmp_path / "data"))
    which, line, change, place = CASES[case]
    _rewrite(pairs[which], line, change)
    config = dpo_config(tmp_path, pairs, "out")
    before = snapshot(tmp_path)
    assert sicog_main(["dpo", str(config)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(place, err), err[-2000:]
    assert not (tmp_path / "out").exists()  # nothing half-written
    assert snapshot(tmp_path) == before
