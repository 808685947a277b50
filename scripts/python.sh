# Sourced by the shell wrappers (training_scripts/common.sh, training_data_annotation/*.sh): sets
# PYTHON, the interpreter that runs sicog: $PYTHON when set, else the repository's own
# .venv/bin/python (what scripts/install.sh makes) when present, else `python` from PATH.
set -euo pipefail

if [ -z "${PYTHON:-}" ]; then
  PYTHON="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python"
  if [ ! -x "$PYTHON" ]; then PYTHON=python; fi
fi
