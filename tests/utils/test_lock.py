"""One writer per output (`output_lock`), writability checked before any work, settings compared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sicog.utils.io import SicogError
from sicog.utils.lock import check_finished, check_writable, lock_path, output_lock, settings_diff

REPO = Path(__file__).resolve().parents[2]
HOLD = "from sicog.utils.lock import output_lock\nimport sys, time\nwith output_lock(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(60)\n"


def _holder(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_fails_at_once_naming_the_holder_and_a_killed_holder_lets_go(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = _holder(out)
    try:
        t0 = time.monotonic()
        with pytest.raises(SicogError, match=rf"out\.jsonl is being written by pid {proc.pid} \(lock .*out\.jsonl\.lock\)"):
            with output_lock(out):
                pass
        # the holder never lets go: a blocking lock would wait until killed, a refusal returns (any load)
        assert time.monotonic() - t0 < 30.0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert lock_path(out).exists()  # a SIGKILL leaves the file, but not the lock
    with output_lock(out) as lock:
        assert lock.read_text().strip() == str(os.getpid())
    assert not lock_path(out).exists()  # a clean exit removes it


def test_the_lock_of_a_folder_lies_beside_it_and_created_parents_are_removed(tmp_path):
    assert lock_path(tmp_path / "eval") == tmp_path / "eval.lock"
    with pytest.raises(RuntimeError):
        with output_lock(tmp_path / "a" / "b" / "out.jsonl"):
            assert (tmp_path / "a" / "b").is_dir()
            raise RuntimeError("the command failed")
    assert not (tmp_path / "a").exists()


def test_unwritable_outputs_are_found_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SicogError, match=r"--out .*afile/deeper/o\.jsonl: cannot be written: .*afile is a file"):
        check_writable(tmp_path / "afile" / "deeper" / "o.jsonl", "--out")
    with pytest.raises(SicogError, match=r"--report-dir .*afile: is a file; expected a folder"):
        check_writable(tmp_path / "afile", "--report-dir", "dir")
    with pytest.raises(SicogError, match=r"--out .*: is a folder; expected the path of a file"):
        check_writable(tmp_path, "--out", "file")
    with pytest.raises(SicogError, match=r"cannot be written \(lock"):
        with output_lock(tmp_path / "afile" / "o.jsonl"):
            pass
    check_writable(tmp_path / "new" / "o.jsonl", "--out")  # a missing folder is created later: fine


def test_finished_outputs_are_kept_refused_or_replaced_by_their_settings(tmp_path):
    out, record = tmp_path / "o.jsonl", tmp_path / "o.jsonl.summary.json"
    assert check_finished(out, {"n": 6, "k": [1]}, {"n": 6, "k": (1,)}, record, overwrite=False)
    with pytest.raises(SicogError, match=r"o\.jsonl was made with other settings \(n: earlier 6, now 4\); "
                                         r"pass --overwrite"):
        check_finished(out, {"n": 6}, {"n": 4}, record, overwrite=False)
    with pytest.raises(SicogError, match=r"does not record the settings"):
        check_finished(out, None, {"n": 4}, record, overwrite=False)
    assert not check_finished(out, {"n": 6}, {"n": 4}, record, overwrite=True)
    assert settings_diff({"a": 1, "gone": 2}, {"a": 1, "new": 3}) == "new: earlier None, now 3; gone: earlier 2, now None"
