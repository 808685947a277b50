#!/usr/bin/env bash
# Install sicog and everything it needs into ./.venv (idempotent: a second run is quick).
#   - A machine whose python already has a CUDA torch keeps it (the venv sees system packages).
#   - A CPU machine gets the CPU wheel torch==2.13.0 (never an unpinned torch: that pulls CUDA).
#   - DeepSpeed builds against the installed torch, hence --no-build-isolation.
# Usage: bash scripts/install.sh            (core + train + dev extras)
#        SICOG_EXTRAS=train,dev,gpu bash scripts/install.sh
#        SICOG_EXTRAS=train,dev,vlmeval bash scripts/install.sh   (VLMEvalKit, also on a CPU-only torch)
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
# VLMEvalKit (extra `vlmeval`) requires torchvision, and PyPI has none for a CPU-only torch: there
# it is installed without its dependencies, plus the ones its run.py imports, torch and
# transformers held as they are (docs/evaluation.md, "VLMEvalKit"). A CUDA torch takes the extra.
if [[ ",$EXTRAS," == *",vlmeval,"* ]] && ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)"; then
  "${PIP[@]}" --no-deps nvidia-vlmeval
  "${PIP[@]}" -c <(.venv/bin/python -c "import torch, transformers; print(f'torch=={torch.__version__}'); print(f'transformers=={transformers.__version__}')") \
    validators portalocker tabulate sty timeout-decorator python-dotenv omegaconf "xlsxwriter<=3.2.3" requests \
    decord imageio opencv-python-headless pandas openai rich huggingface_hub
  EXTRAS="$(echo ",$EXTRAS," | sed 's/,vlmeval,/,/; s/^,//; s/,$//')"
fi
"${PIP[@]}" -e ".${EXTRAS:+[$EXTRAS]}"
.venv/bin/python -c "import torch, transformers, sicog; print(f'install: torch {torch.__version__}, transformers {transformers.__version__}, sicog {sicog.__version__}')"
