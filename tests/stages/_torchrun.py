"""Two CPU ranks under torchrun, for the DeepSpeed tests. A launch that times out is stopped with
its ranks: torchrun starts them in their own sessions, and a rank orphaned by killing torchrun alone
kept running (and kept holding torch's extension build lock, which stalls every later launch)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_torchrun(args: list[str], cwd: Path, timeout: float = 420) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --nproc_per_node 2 ARGS` with one torch thread per rank."""
    port = str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": port}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port, *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun stops its ranks on SIGTERM
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        raise AssertionError(f"torchrun timed out after {timeout} s:\n{out[-3000:]}\n{err[-6000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
