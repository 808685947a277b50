"""Under torchrun: `sicog dpo CONFIG` for each config given, one after another in the same ranks.

tests/stages/test_dpo_deepspeed.py runs its ZeRO-2 and ZeRO-3 stages in one launch this way
(starting two ranks costs more than training the tiny model). In real use every stage is a fresh
process, so what Accelerate and transformers keep between stages is reset before each one.

Like every DeepSpeed test, the ranks skip DeepSpeed's CPU shared-memory kernel (_sicog_rank.py).
"""

import sys


def main(configs: list[str]) -> int:
    from _sicog_rank import skip_shm_kernel  # (this script's folder is on sys.path)
    from accelerate.state import AcceleratorState, GradientState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from sicog.cli import main as sicog_main

    skip_shm_kernel()
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
