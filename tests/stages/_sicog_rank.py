"""Under torchrun or the deepspeed launcher: `sicog ARGS` in a rank that skips DeepSpeed's CPU
shared-memory kernel.

DeepSpeed's CPU backend compiles that kernel at start-up (minutes of C++ in a fresh environment, more
on a loaded machine); only `inference_all_reduce` uses it, never training, so the DeepSpeed tests run
their ranks without it and need no compiler.
"""

import importlib
import sys


def skip_shm_kernel() -> None:
    # (by module path: deepspeed.comm's attribute `torch` is the torch package)
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


if __name__ == "__main__":
    skip_shm_kernel()
    from sicog.cli import main

    sys.exit(main(sys.argv[1:]))
