"""`sicog annotate cod` killed at any moment: no item lost, none twice, none finished asked again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sicog.cli import main
from tests.stages._annotation import annotate_argv, read_jsonl, write_caption_records
from tests.stages._cod_server import CodServer

REPO = Path(__file__).resolve().parents[2]


def _journal(out: Path) -> Path:
    return out / "journal.parts" / "rank-0.jsonl"


def _journaled_ids(out: Path) -> set[str]:
    if not _journal(out).exists():
        return set()
    lines = _journal(out).read_bytes().split(b"\n")[:-1]  # complete lines only
    return {json.loads(line)["id"] for line in lines if line.strip()}


def test_sigkill_then_restart_loses_nothing_and_asks_nothing_again(tmp_path):
    n = 40
    data, folder = write_caption_records(tmp_path, n)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with CodServer(delay=0.15, faults={"item-3": ["500", "ok"], "item-20": ["stepless", "ok"]}) as server:
        argv = [sys.executable, "-m", "sicog", *annotate_argv(data, folder, out, server.base_url,
                                                              "--concurrency", "4", "--request-timeout", "5")]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(_journaled_ids(out)) < 10 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        finished_before = _journaled_ids(out)
        requests_before = len(server.log)
        assert 10 <= len(finished_before) < n  # killed mid-run
        assert not (out / "cod.jsonl").exists()

        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        asked_again = {item for item, _ in server.log[requests_before:]}
    assert not asked_again & finished_before  # the server's log: no finished item requested again
    assert asked_again | finished_before == {f"item-{k}" for k in range(n)}
    ids = [r["id"] for r in read_jsonl(out / "cod.jsonl")]
    assert ids == [f"item-{k}" for k in range(n)]  # all, once each, in input order
    assert read_jsonl(out / "failures.jsonl") == []
    assert json.loads((out / "summary.json").read_text())["annotated"] == n


def test_a_journal_line_torn_by_a_kill_is_redone_once(tmp_path):
    data, folder = write_caption_records(tmp_path, 3)
    out = tmp_path / "out"
    with CodServer() as server:
        assert main(annotate_argv(data, folder, out, server.base_url)) == 0
        lines = _journal(out).read_text().splitlines(keepends=True)
        # as if killed while writing item-2's line, before the outputs were written
        _journal(out).write_text("".join(lines[:2]) + lines[2][:25])
        for name in ("cod.jsonl", "dd.jsonl", "failures.jsonl", "summary.json"):
            (out / name).unlink()
        assert main(annotate_argv(data, folder, out, server.base_url)) == 0
        redone = [item for item, _ in server.log[3:]]
    torn = json.loads(lines[2])["id"]
    assert redone == [torn]
    assert [r["id"] for r in read_jsonl(out / "cod.jsonl")] == ["item-0", "item-1", "item-2"]
