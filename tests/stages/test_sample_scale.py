"""`sicog sample` at scale: SIGKILL + resume is exactly-once; K ranks give what 1 rank gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sicog.stages.sampling.runner import SampleConfig, run_sampling
from sicog.utils.shards import parts_dir
from tests.stages._sampling import (  # noqa: F401
    REPO,
    one_torch_thread,
    read_jsonl,
    run_sicog,
    sample_cmd,
    subprocess_env,
    write_records,
)

pytestmark = pytest.mark.slow


def _reference(ckpt, tmp_path, data, n, tokens, **kw) -> list[dict]:
    """The same job run uninterrupted, in-process, on one rank."""
    out = tmp_path / "reference.jsonl"
    run_sampling(SampleConfig(model=str(ckpt), data=str(data), out=str(out), mode="cot",
                              n=n, image_folder=str(data.parent), temperature=1.0,
                              max_new_tokens=tokens, batch_size=1, progress=False, **kw))
    return read_jsonl(out)


def test_sigkill_mid_run_then_same_command_gives_every_id_once(tiny_ckpt, tmp_path):
    n_rec, n, tokens = 14, 3, 16
    data = write_records(tmp_path, n_rec, sizes=[(40, 30), (2, 3)])
    out = tmp_path / "out.jsonl"
    args = sample_cmd(tiny_ckpt, data, out, "--mode", "cot", "--n", str(n), "--temperature", "1.0",
                      "--max-new-tokens", str(tokens), "--batch-size", "1")
    proc = subprocess.Popen([sys.executable, "-m", "sicog", *args], env=subprocess_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    part = parts_dir(out) / "rank-0.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if part.exists() and part.read_text().count("\n") >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"sample exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done_before = part.read_text().count("\n")
    assert 3 <= done_before < n_rec, "the kill must land mid-run"
    assert not out.exists()
    with open(part, "a") as fh:  # what a kill in the middle of a write leaves behind
        fh.write('{"id": "r13", "image": "img/13.png", "cand')

    res = run_sicog(args)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == [f"r{i}" for i in range(n_rec)]  # every id exactly once
    assert all(len(r["candidates"]) == n for r in recs)
    assert not parts_dir(out).exists()
    # the resumed run reproduces the uninterrupted one exactly (batch seeds are per item key)
    assert recs == _reference(tiny_ckpt, tmp_path, data, n, tokens)


def test_two_ranks_give_the_same_records_as_one(tiny_ckpt, tmp_path):
    data = write_records(tmp_path, 7, sizes=[(40, 30), (1, 1)])
    out = tmp_path / "out2.jsonl"
    args = sample_cmd(tiny_ckpt, data, out, "--mode", "cot", "--num-candidates", "2",
                      "--temperature", "1.0", "--max-new-tokens", "5", "--batch-size", "1", "--corruption", "none,blur")
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", "-m", "sicog", *args],
                         capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "[rank 1]" in res.stderr  # really two ranks
    two = read_jsonl(out)
    one = _reference(tiny_ckpt, tmp_path, data, 2, 5, corruption="none,blur")
    assert [r["id"] for r in two] == [r["id"] for r in one] == [
        f"r{i}{s}" for i in range(7) for s in ("", "#gaussian_blur")]
    assert two == one  # batch size 1: each item's seed depends on the item only
    # other settings under torchrun: refused, then --overwrite (rank 0 clears, then both ranks sample)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "sicog"]
    other = [a if a != "5" else "3" for a in args]  # --max-new-tokens 5 -> 3
    res = subprocess.run([*torchrun, *other], capture_output=True, text=True, timeout=300, env=subprocess_env(), cwd=REPO)
    assert res.returncode != 0 and "max_new_tokens: earlier 5, now 3" in res.stderr and read_jsonl(out) == two
    res = subprocess.run([*torchrun, *other, "--overwrite"], capture_output=True, text=True, timeout=300,
                         env=subprocess_env(), cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    again = read_jsonl(out)
    assert [r["id"] for r in again] == [r["id"] for r in two] and all(r["meta"]["max_new_tokens"] == 3 for r in again)
    assert not parts_dir(out).exists() and not out.with_name(out.name + ".lock").exists()


def test_two_ranks_without_a_launcher_rendezvous(tiny_ckpt, tmp_path, monkeypatch):
    """RANK/WORLD_SIZE only (no MASTER_ADDR): rank 0 waits for the other's parts, then merges.

    Rank 1 runs in a subprocess, rank 0 in this process (saves one interpreter start)."""
    data = write_records(tmp_path, 5)
    out = tmp_path / "out3.jsonl"
    args = sample_cmd(tiny_ckpt, data, out, "--mode", "direct", "--n", "2", "--max-new-tokens", "4")
    env = {k: v for k, v in subprocess_env().items() if k not in ("MASTER_ADDR", "MASTER_PORT")}
    rank1 = subprocess.Popen([sys.executable, "-m", "sicog", *args], cwd=REPO,
                             env={**env, "RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for k, v in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("MASTER_ADDR", raising=False)
        summary = run_sampling(SampleConfig(
            model=str(tiny_ckpt), data=str(data), out=str(out), mode="direct", n=2,
            image_folder=str(data.parent), max_new_tokens=4, progress=False, wait_timeout=240))
        _, err = rank1.communicate(timeout=240)
    finally:
        if rank1.poll() is None:
            rank1.kill()
    assert rank1.returncode == 0, err[-3000:]
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == [f"r{i}" for i in range(5)]
    assert all(len(r["candidates"]) == 2 for r in recs)
    assert summary["world_size"] == 2 and summary["written"] == 5
