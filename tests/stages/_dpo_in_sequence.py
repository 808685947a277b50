"""Under torchrun: `sicog dpo CONFIG` for each config given, one after another in the same ranks.

tests/stages/test_dpo_deepspeed.py runs its ZeRO-2 and ZeRO-3 stages in one launch this way
(starting two ranks costs more than training the tiny model). In real use every stage is a fresh
process, so what Accelerate and transformers keep between stages is reset before each one.

DeepSpeed's CPU backend would also compile its shared-memory all-reduce kernel at start-up (a minute
of C++, many on a loaded machine); only `inference_all_reduce` uses it, never training, so these
ranks go without it and the test needs no compiler.
"""

import sys


def main(configs: list[str]) -> int:
    import importlib

    from accelerate.state import AcceleratorState, GradientState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from sicog.cli import main as sicog_main

    # (by module path: deepspeed.comm's attribute `torch` is the torch package)
    importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None
    for config in configs:
        AcceleratorState._reset_state()  # the DeepSpeed plugin of the previous stage
        GradientState._reset_state()
        unset_hf_deepspeed_config()  # the previous stage's ZeRO stage, read by from_pretrained
        code = sicog_main(["dpo", config])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
