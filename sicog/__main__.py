"""`python -m sicog ...` (works under torchrun and the deepspeed launcher)."""

import sys

from sicog.cli import main

if __name__ == "__main__":
    sys.exit(main())
