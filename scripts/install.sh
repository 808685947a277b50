#!/usr/bin/env bash
# Install sicog and everything it needs into ./.venv (idempotent: a second run is quick).
#   - A machine whose python already has a CUDA torch keeps it (the venv sees system packages).
#   - A CPU machine gets the CPU wheel torch==2.13.0 (never an unpinned torch: that pulls CUDA).
#   - DeepSpeed builds against the installed torch, hence --no-build-isolation.
# Usage: bash scripts/install.sh            (core + train + dev extras)
#        SICOG_EXTRAS=train,dev,gpu bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
EXTRAS="${SICOG_EXTRAS:-train,dev}"

if [ ! -x .venv/bin/python ]; then
  if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "install: a CUDA torch is already installed; the venv will use it"
    "$PYTHON" -m venv --system-site-packages .venv
  else
    "$PYTHON" -m venv .venv
  fi
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --upgrade pip setuptools wheel

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==2.13.0"
fi
# The core first (torch already satisfies its range, so nothing re-resolves torch) ...
"${PIP[@]}" -e .
# ... then DeepSpeed, which compiles against that torch, then the remaining extras.
if [[ ",$EXTRAS," == *",train,"* ]]; then
  "${PIP[@]}" --no-build-isolation "deepspeed>=0.15"
fi
"${PIP[@]}" -e ".[$EXTRAS]"
.venv/bin/python -c "import torch, transformers, sicog; print(f'install: torch {torch.__version__}, transformers {transformers.__version__}, sicog {sicog.__version__}')"
