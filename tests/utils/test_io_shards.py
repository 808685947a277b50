"""Atomic writes and exactly-once, resumable part files."""

import json
import os

import pytest

from sicog.utils.io import SicogError, atomic_dir, atomic_write, write_jsonl
from sicog.utils.shards import PartWriter, merge_parts, parts_dir, read_completed, shard_indices


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    out = tmp_path / "o.txt"
    with pytest.raises(RuntimeError):
        with atomic_write(out) as fh:
            fh.write("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(out) as fh:
        fh.write("done")
    assert out.read_text() == "done"


def test_atomic_dir(tmp_path):
    d = tmp_path / "ck"
    with pytest.raises(ValueError):
        with atomic_dir(d) as tmp:
            (tmp / "a").write_text("x")
            raise ValueError
    assert not d.exists() and list(tmp_path.iterdir()) == []
    with atomic_dir(d) as tmp:
        (tmp / "a").write_text("x")
    assert (d / "a").read_text() == "x"


def test_shards_cover_once():
    n, w = 11, 3
    got = sorted(i for r in range(w) for i in shard_indices(n, r, w))
    assert got == list(range(n))


def test_resume_merge_exactly_once(tmp_path):
    out = tmp_path / "out.jsonl"
    ids = [f"r{i}" for i in range(6)]
    with PartWriter(out, 0) as w:
        for i in ids[:3]:
            w.write({"id": i, "v": 1})
    # simulate a torn last line from a kill
    with open(parts_dir(out) / "rank-0.jsonl", "a") as fh:
        fh.write('{"id": "r3", "v"')
    assert set(read_completed(out)) == {"r0", "r1", "r2"}
    with pytest.raises(SicogError, match="not finished"):
        merge_parts(out, ids)
    assert not out.exists()
    with PartWriter(out, 0) as w:  # repairs the torn tail before appending
        for i in ids[3:]:
            w.write({"id": i, "v": 2})
    with PartWriter(out, 1) as w:  # a duplicate from another rank/run is merged once
        w.write({"id": "r0", "v": 9})
    assert merge_parts(out, ids) == 6
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == ids
    assert not parts_dir(out).exists()
    assert write_jsonl(tmp_path / "x.jsonl", [{"a": 1}]) == 1
    assert os.path.exists(tmp_path / "x.jsonl")
