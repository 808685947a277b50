#!/usr/bin/env bash
# The first GPU run, in one command: random-init CLIP-L/336 + Qwen2-1.5B-shaped models (arch llava and
# uhd) through sicog train (padded, packed, ZeRO-2 under torchrun), sample, evaluate and dpo on one
# GPU, in bf16, with flash-attention 2 and Liger where installed; one table at the end, exit 1 naming
# the steps that failed. Nothing is downloaded or installed. See docs/training_throughput.md.
# Usage: bash scripts/gpu_check.sh --out runs/gpu_check [flags]       (every flag: --help)
#        bash scripts/gpu_check.sh --cpu-smoke --out /tmp/gpu_check   (tiny shapes on CPU, about a minute)
#        GPU_CHECK_OUT=runs/gpu_check bash scripts/gpu_check.sh       (--out from the environment)
# The interpreter: $PYTHON, else the repository's .venv/bin/python, else python (scripts/python.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/python.sh"

args=("$@")
if [ -n "${GPU_CHECK_OUT:-}" ]; then args=(--out "$GPU_CHECK_OUT" "${args[@]}"); fi
exec "$PYTHON" "$(dirname "${BASH_SOURCE[0]}")/../benchmarks/gpu_check.py" "${args[@]}"
