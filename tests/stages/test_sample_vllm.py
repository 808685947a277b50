"""`sicog sample --backend openai` against a real vLLM server (`sicog serve`), archs llava and uhd
(uhd through sicog's vLLM plugin, which scripts/vllm_env.sh installs into the vLLM venv).

Opt-in: `pytest -m vllm` (left out otherwise, tests/conftest.py), and skipped when the vLLM venv
of scripts/vllm_env.sh is missing. The server listens on 127.0.0.1 only; every wait is bounded.
A server takes minutes to start on a loaded 2-core machine, so the tests of one arch share one
(and the last test of each arch starts a second after killing the first).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from sicog.utils.shards import parts_dir
from tests.stages._sampling import REPO, read_jsonl, run_sicog, sample_cmd, subprocess_env, write_records

pytestmark = pytest.mark.vllm

SERVER_START_TIMEOUT = 900.0  # seconds; measured 2-5 minutes on a loaded 2-core machine
N_RECORDS, TOKENS = 12, 16


def _vllm_python() -> str:
    from sicog.serve import vllm_python
    from sicog.utils.io import SicogError

    try:
        return vllm_python(None)
    except SicogError as e:
        pytest.skip(str(e))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`sicog serve CKPT` in its own process group on 127.0.0.1."""

    def __init__(self, ckpt, port: int, log_path):
        self.port, self.log_path = port, log_path
        self.base = f"http://127.0.0.1:{port}/v1"
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sicog", "serve", str(ckpt), "--port", str(port), "--served-model-name", "tiny",
             "--kv-cache-gib", "1", "--vllm-args=--enforce-eager"],
            env=subprocess_env(VLLM_CPU_NUM_OF_RESERVED_CPU="0"), cwd=REPO,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.kill()
                pytest.fail(f"the vLLM server exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.base + "/models", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(2)
        self.kill()
        pytest.fail(f"the vLLM server did not start in {SERVER_START_TIMEOUT:.0f}s: {self.log_tail()}")

    def log_tail(self) -> str:
        return open(self.log_path, "rb").read()[-3000:].decode("utf-8", "replace")

    def kill(self, sig=signal.SIGKILL) -> None:
        """Signal the whole group (the API server and its engine process), then reap."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=60)
        self._log.close()


def make_varied_checkpoint(out, arch: str = "llava"):
    """A tiny checkpoint of `arch` whose greedy outputs differ from image to image: the random
    init's small weights make every item answer the same token, so the matrices are redrawn at
    unit gain (seeded). Written by save_checkpoint, as every sicog checkpoint is."""
    import torch

    from sicog.model.checkpoint import load_checkpoint, save_checkpoint
    from sicog.model.tiny import make_tiny_checkpoint

    base = make_tiny_checkpoint(out.with_name(out.name + "-base"), seed=0, arch=arch)
    model, processor = load_checkpoint(base)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 2.0 / p.shape[1] ** 0.5)
    return save_checkpoint(model, processor, out, {"stage": "init", "seed": 0})


@pytest.fixture(scope="module", params=["llava", "uhd"])
def served(request, tmp_path_factory):
    """(checkpoint, data file, server) shared by the tests of one arch. For uhd the images are
    resized to a longer side of 195 px and sliced at 64 px: 3x2 and 2x3 grids plus the overview."""
    _vllm_python()
    root = tmp_path_factory.mktemp(f"vllm-{request.param}")
    ckpt = make_varied_checkpoint(root / "ckpt", request.param)
    data = write_records(root, N_RECORDS, sizes=[(40, 30), (64, 64), (23, 50)])
    server = Server(ckpt, _free_port(), root / "server.log")
    yield ckpt, data, server
    server.kill(signal.SIGTERM)


def _greedy(ckpt_or_name, data, out, *extra):
    return sample_cmd(ckpt_or_name, data, out, "--mode", "direct", "--n", "1", "--temperature", "0",
                      "--max-new-tokens", str(TOKENS), *extra)


def _openai(server, data, out, *extra):
    return _greedy("tiny", data, out, "--backend", "openai", "--api-base", server.base, *extra)


def _texts(path) -> dict[str, str]:
    # A generation cut at the token budget may end inside a multi-byte character: transformers
    # decodes the lone bytes as U+FFFD, vLLM's incremental detokenizer holds them back.
    return {r["id"]: r["candidates"][0].rstrip("\ufffd") for r in read_jsonl(path)}


@pytest.fixture(scope="module")
def hf_reference(served, tmp_path_factory):
    ckpt, data, _ = served
    out = tmp_path_factory.mktemp("hf") / "hf.jsonl"
    res = run_sicog(_greedy(ckpt, data, out, "--backend", "hf", "--batch-size", "4"), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return _texts(out)


def test_greedy_outputs_equal_the_hf_backend(served, hf_reference, tmp_path):
    _, data, server = served
    out = tmp_path / "vllm.jsonl"
    res = run_sicog(_openai(server, data, out, "--concurrency", "4"), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = _texts(out)
    assert list(got) == list(hf_reference)
    same = [k for k in got if got[k] == hf_reference[k]]
    assert len(set(hf_reference.values())) > N_RECORDS // 2, "the outputs must differ between items"
    assert same == list(got), {k: (hf_reference[k], got[k]) for k in got if k not in same}


def test_sigkill_of_the_sampler_then_resume_gives_every_id_once(served, hf_reference, tmp_path):
    _, data, server = served
    out = tmp_path / "out.jsonl"
    args = _openai(server, data, out, "--concurrency", "1")
    proc = subprocess.Popen([sys.executable, "-m", "sicog", *args], env=subprocess_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    part = parts_dir(out) / "rank-0.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (part.exists() and part.read_text().count("\n") >= 3):
        if proc.poll() is not None:
            pytest.fail(f"sample exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    done_before = part.read_text().count("\n")
    assert 3 <= done_before < N_RECORDS, "the kill must land mid-run"
    with open(part, "a") as fh:  # a write cut short by the kill
        fh.write('{"id": "r11", "image": "img/11.png", "cand')
    res = run_sicog(args, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == [f"r{i}" for i in range(N_RECORDS)]  # every id exactly once
    assert _texts(out) == hf_reference
    assert not parts_dir(out).exists()


def test_server_killed_mid_run_is_a_clear_error_and_the_rerun_completes(served, hf_reference, tmp_path):
    """Runs last in the module: it kills the shared server, then serves the same folder again."""
    ckpt, data, server = served
    out = tmp_path / "out.jsonl"
    args = _openai(server, data, out, "--concurrency", "1", "--max-retries", "2", "--retry-delay", "0.2",
                   "--request-timeout", "60")
    proc = subprocess.Popen([sys.executable, "-m", "sicog", *args], env=subprocess_env(), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    part = parts_dir(out) / "rank-0.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (part.exists() and part.read_text().count("\n") >= 2):
        if proc.poll() is not None:
            pytest.fail(f"sample exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    server.kill()  # SIGKILL to the server and its engine
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the sampler kept going after its server died")
    err = err.decode()
    assert proc.returncode == 2, err[-3000:]
    assert "giving up after 3 attempts" in err and "cannot reach" in err, err[-3000:]
    assert "Traceback" not in err
    assert not out.exists() and part.read_text().count("\n") < N_RECORDS

    again = Server(ckpt, server.port, server.log_path)  # same folder, same port
    try:
        res = run_sicog(args, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert [r["id"] for r in read_jsonl(out)] == [f"r{i}" for i in range(N_RECORDS)]
        assert _texts(out) == hf_reference
    finally:
        again.kill(signal.SIGTERM)

