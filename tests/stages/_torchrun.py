"""Two CPU ranks under torchrun, for the DeepSpeed tests.

DeepSpeed's CPU backend compiles a C++ kernel (deepspeed_shm_comm) when it starts, into torch's
extension folder - one folder per Python version, shared by every environment: two environments
with DeepSpeed (a venv, a CI checkout) rebuild it in turn, about a minute of C++ each time and
many minutes on a loaded machine. The tests give each environment its own folder, so it is built
once per environment. A timed-out launch is stopped whole: torchrun starts its ranks in their own
sessions, and an orphaned rank kept compiling and holding the build lock.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def extensions_dir() -> str:
    """TORCH_EXTENSIONS_DIR for this environment (the caller's own setting wins)."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return os.environ["TORCH_EXTENSIONS_DIR"]
    import deepspeed
    import torch

    key = f"{Path(deepspeed.__file__).resolve().parent}|{deepspeed.__version__}|{torch.__version__}|{sys.version}"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return str(cache / "torch_extensions" / f"env-{hashlib.sha256(key.encode()).hexdigest()[:12]}")


def run_torchrun(args: list[str], cwd: Path, timeout: float = 420) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --nproc_per_node 2 ARGS` with one torch thread per rank."""
    port = str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": port, "TORCH_EXTENSIONS_DIR": extensions_dir()}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port, *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun stops its ranks on SIGTERM (a SIGKILL would orphan them)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        raise AssertionError(f"torchrun timed out after {timeout} s:\n{out[-3000:]}\n{err[-6000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
