"""Multi-process helpers shared by `sicog sample` and `sicog curate`: the gloo process group
and the device a rank runs on. torch is imported only when needed."""

from __future__ import annotations

import os
from datetime import timedelta

# How long a rank may wait in a barrier for the others. Ranks can finish hours or days apart on
# real data (unequal shares, long generations, resumed runs with most work already done), and a
# rank that dies is the launcher's business: torchrun tears the whole job down. So the timeout
# only has to outlast the slowest healthy rank; a week does, without ever firing in practice.
PROCESS_GROUP_TIMEOUT = timedelta(days=7)


def init_process_group(world_size: int) -> bool:
    """Join a gloo group when a launcher provided a rendezvous (torchrun); False otherwise.

    Without MASTER_ADDR/MASTER_PORT (ranks started by hand) the callers coordinate through
    marker files instead.
    """
    if world_size <= 1 or not os.environ.get("MASTER_ADDR") or not os.environ.get("MASTER_PORT"):
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=PROCESS_GROUP_TIMEOUT)
    return True


def join_ranks(world_size: int, rank: int, overwrite: bool, out, clear) -> bool:
    """Join the process group (torchrun) and, with --overwrite, let rank 0 remove the old output
    (`clear()`) before any rank writes; returns whether a process group is up."""
    grouped = init_process_group(world_size)
    if overwrite and world_size > 1 and not grouped:
        from sicog.utils.io import SicogError

        raise SicogError("--overwrite with several ranks needs torchrun (a process group), so that rank 0 clears "
                         f"{out} before the others write; remove it yourself, or run under torchrun")
    if overwrite and rank == 0:
        clear()
    if grouped:
        import torch.distributed as dist

        dist.barrier()  # nobody writes before rank 0 has cleared (and holds the lock)
    return grouped


def pick_device(device: str = "auto") -> str:
    """`auto` -> this rank's GPU (LOCAL_RANK modulo the visible GPUs) when CUDA is available,
    else the CPU; any other value is returned as it is."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    return "cpu"
