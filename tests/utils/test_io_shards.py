"""Atomic writes and exactly-once, resumable part files."""

import json
import os

import pytest

from sicog.utils.io import SicogError, atomic_dir, atomic_write, write_jsonl
from sicog.utils.shards import PartWriter, merge_parts, owns, parts_dir, read_completed


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
    owners = [[r for r in range(w) if owns(i, r, w)] for i in range(n)]
    assert all(len(o) == 1 for o in owners) and {o[0] for o in owners} == set(range(w))


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


def test_iter_jsonl_names_file_line_and_tolerates_only_a_torn_tail(tmp_path):
    from sicog.utils.io import iter_jsonl

    f = tmp_path / "a.jsonl"
    f.write_text('{"a": 1}\n\n[2]\n{"a": 3')
    with pytest.raises(SicogError, match=r"a\.jsonl:4: invalid JSON: .*column"):
        list(iter_jsonl(f))
    assert list(iter_jsonl(f, torn_tail_ok=True)) == [(1, {"a": 1}), (3, [2])]
    got = list(iter_jsonl(f, errors="yield"))
    assert got[:2] == [(1, {"a": 1}), (3, [2])] and got[2][0] == 4 and isinstance(got[2][1], SicogError)
    # a malformed line that ends with a newline was written whole: corruption, never tolerated
    f.write_text('{"a": 1}\n{"a": \n{"a": 3}\n')
    with pytest.raises(SicogError, match=r"a\.jsonl:2: invalid JSON"):
        list(iter_jsonl(f, torn_tail_ok=True))
    # a write torn inside a multi-byte character is a torn tail as well; elsewhere it is an error
    f.write_bytes(b'{"a": 1}\n' + '{"a": "\u00e9"}'.encode()[:-3])
    assert list(iter_jsonl(f, torn_tail_ok=True)) == [(1, {"a": 1})]
    f.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(SicogError, match=r"a\.jsonl:1: not UTF-8"):
        list(iter_jsonl(f))


def test_read_completed_reports_corruption_inside_a_part(tmp_path):
    out = tmp_path / "out.jsonl"
    with PartWriter(out, 0) as w:
        w.write({"id": "r0"})
    part = parts_dir(out) / "rank-0.jsonl"
    part.write_text(part.read_text() + '{"id": \n{"id": "r2"}\n')
    with pytest.raises(SicogError, match=r"rank-0\.jsonl:2: invalid JSON"):
        read_completed(out)
