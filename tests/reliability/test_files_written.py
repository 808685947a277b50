"""What commands write, on a bad day: a full disk is exit 2 naming the path with nothing
half-written and no temp file left; NaN / Infinity never reach a JSONL (strict JSON readers refuse
them); a JSONL that starts with a BOM keeps its first record; temp files of a killed writer are
cleaned by the next run. Table-driven over `sicog pairs` (in-process) and the io helpers.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import time
from pathlib import Path

import pytest

from sicog.cli import main as sicog_main
from sicog.utils import io

from ._harness import snapshot


def _curated(i: int) -> dict:
    return {"id": f"q{i}", "image": f"images/{i}.png", "mode": "cot", "rejected": f"Wrong {i}. The answer is B.",
            "conversations": [{"from": "human", "value": f"<image>\nQuestion {i}?"},
                              {"from": "gpt", "value": f"Right {i}. The answer is A."}]}


def _pairs(tmp: Path, *extra: str) -> list[str]:
    return ["pairs", "--curated", str(tmp / "curated.jsonl"), "--out", str(tmp / "out" / "p.jsonl"),
            "--heldout-out", str(tmp / "out" / "h.jsonl"), "--heldout-fraction", "0.25", *extra]


@pytest.fixture
def tmp(tmp_path) -> Path:
    (tmp_path / "curated.jsonl").write_text("".join(json.dumps(_curated(i)) + "\n" for i in range(20)))
    return tmp_path


def _fails_on(call: str):
    """A stand-in for os.fsync / os.replace that raises ENOSPC (a full disk) on an output's temp file."""
    real = getattr(os, call)

    def full(*args, **kwargs):
        target = os.readlink(f"/proc/self/fd/{args[0]}") if isinstance(args[0], int) else str(args[0])
        if target.endswith(".tmp"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)
    return call, full


DISK_FULL = {"fsync": _fails_on("fsync"), "replace": _fails_on("replace")}


@pytest.mark.parametrize("case", sorted(DISK_FULL))
def test_a_full_disk_is_exit_2_naming_the_path(tmp, capsys, monkeypatch, case):
    name, full = DISK_FULL[case]
    before = snapshot(tmp)
    monkeypatch.setattr(io.os, name, full)
    rc = sicog_main(_pairs(tmp))
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    assert re.search(r"out/h\.jsonl: cannot write: No space left on device", err), err[-2000:]
    assert not list((tmp / "out").glob("*.jsonl*")) and not list((tmp / "out").glob(".*.tmp"))
    assert {k: v for k, v in snapshot(tmp).items() if k in before} == before


NON_FINITE = {"nan": float("nan"), "infinity": float("inf"), "minus_infinity": -math.inf}


@pytest.mark.parametrize("case", sorted(NON_FINITE))
def test_non_finite_numbers_are_written_as_null(tmp_path, case):
    value = NON_FINITE[case]
    io.write_jsonl(tmp_path / "x.jsonl", [{"score": value, "nested": [1.0, value]}])
    io.write_json(tmp_path / "x.json", {"score": value})
    line = (tmp_path / "x.jsonl").read_text()
    strict = json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} written"))
    assert strict == {"score": None, "nested": [1.0, None]}
    assert json.loads((tmp_path / "x.json").read_text(), parse_constant=lambda c: pytest.fail(c)) == {"score": None}


def test_a_bom_keeps_the_first_record(tmp, capsys):
    data = tmp / "curated.jsonl"
    data.write_bytes(b"\xef\xbb\xbf" + data.read_bytes())
    assert sicog_main(_pairs(tmp)) == 0
    summary = json.loads((tmp / "out" / "p.jsonl.summary.json").read_text())
    assert summary["stats"]["curated_records"] == 20


def test_temp_files_of_a_killed_writer_are_cleaned(tmp, capsys):
    out = tmp / "out"
    out.mkdir()
    stale, fresh = out / ".p.jsonl.abc123.tmp", out / ".p.jsonl.def456.tmp"
    stale.write_text("half")
    fresh.write_text("a writer at work")
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    assert sicog_main(_pairs(tmp)) == 0
    assert not stale.exists() and fresh.exists()


def test_temp_folders_of_a_killed_checkpoint_writer_are_cleaned(tmp_path):
    stale = tmp_path / ".final.x1y2.tmp"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "w.bin").write_bytes(b"half")
    old = time.time() - 3 * 24 * 3600
    os.utime(stale, (old, old))
    with io.atomic_dir(tmp_path / "final") as d:
        (d / "ok").write_text("done")
    assert not stale.exists() and (tmp_path / "final" / "ok").is_file()


def test_a_full_disk_under_annotate_is_exit_2_naming_its_journal(tmp_path, capsys, monkeypatch):
    """The journal is where paid answers live: a full disk there stops the run at once, named."""
    from sicog.utils.shards import PartWriter
    from tests.stages._annotation import annotate_argv, write_caption_records
    from tests.stages._cod_server import CodServer

    real_init = PartWriter.__init__

    def full_disk(self, out, rank):
        real_init(self, out, rank)
        real = self._fh

        class Full:
            def write(self, text):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def __getattr__(self, name):
                return getattr(real, name)
        self._fh = Full()

    monkeypatch.setattr(PartWriter, "__init__", full_disk)
    data, folder = write_caption_records(tmp_path, 3)
    with CodServer() as server:
        rc = sicog_main(annotate_argv(data, folder, tmp_path / "out", server.base_url))
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    assert re.search(r"journal\.parts/rank-0\.jsonl: cannot write: No space left on device", err), err[-2000:]
    assert not (tmp_path / "out" / "cod.jsonl").exists()


# full after this many journal lines: (lines the journal takes, --concurrency)
PAID_ANSWERS = {"first_line": (0, "4"), "after_three_lines": (3, "4"), "one_at_a_time": (2, "1")}


@pytest.mark.parametrize("case", sorted(PAID_ANSWERS))
def test_a_full_disk_under_annotate_loses_no_paid_answer(tmp_path, capsys, monkeypatch, case):
    """Every answer the server sent is in the journal or printed as a journal line; appended, the
    next run asks only for the rest."""
    from sicog.utils.shards import PartWriter
    from tests.stages._annotation import annotate_argv, read_jsonl, write_caption_records
    from tests.stages._cod_server import CodServer

    room, concurrency = PAID_ANSWERS[case]
    real_write = PartWriter.write

    def fills_up(self, rec):
        self.lines = getattr(self, "lines", 0) + 1
        if self.lines > room:
            raise io.disk_error(self.path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
        real_write(self, rec)

    data, folder = write_caption_records(tmp_path, 8)
    out = tmp_path / "out"
    with CodServer(delay=0.05) as server:
        argv = annotate_argv(data, folder, out, server.base_url, "--concurrency", concurrency)
        monkeypatch.setattr(PartWriter, "write", fills_up)
        rc = sicog_main(argv)
        monkeypatch.undo()
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err, err[-2000:]
        assert re.search(r"journal\.parts/rank-0\.jsonl: cannot write: No space left on device; \d+ paid answer",
                         err), err[-2000:]
        journal = out / "journal.parts" / "rank-0.jsonl"
        printed = [line for line in err.split("once there is room ---\n", 1)[1].split("---\n", 1)[0].splitlines()]
        kept = [r["id"] for r in read_jsonl(journal)] + [json.loads(line)["id"] for line in printed]
        paid = [item for item, kind in server.log]
        assert sorted(kept) == sorted(paid) and len(paid) >= 1 and len(read_jsonl(journal)) == room
        assert not (out / "cod.jsonl").exists()
        with open(journal, "a") as fh:  # what the user does once there is room
            fh.write("".join(line + "\n" for line in printed))
        assert sicog_main(argv) == 0, capsys.readouterr().err[-2000:]
        assert sorted(item for item, _ in server.log) == sorted(f"item-{k}" for k in range(8))  # none asked twice
    assert len(read_jsonl(out / "cod.jsonl")) == 8


def _fifo(tmp: Path) -> None:
    (tmp / "curated.jsonl").unlink()
    os.mkfifo(tmp / "curated.jsonl")


# name: (what is done to --curated, the error)
CURATED_UNREADABLE = {"missing": (lambda tmp: (tmp / "curated.jsonl").unlink(), r"curated\.jsonl: file not found"),
                      "a_fifo": (_fifo, r"curated\.jsonl: is not a regular file \(a FIFO")}


@pytest.mark.parametrize("case", sorted(CURATED_UNREADABLE))
def test_pairs_names_an_unreadable_curated_file(tmp, capsys, case):
    damage, place = CURATED_UNREADABLE[case]
    damage(tmp)
    rc = sicog_main(_pairs(tmp))  # a hang on the FIFO is the defect (the suite's timeout stops it)
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and re.search(place, err), err[-2000:]
    assert not (tmp / "out").exists()
