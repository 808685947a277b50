# Sourced by the shell wrappers: SICOG_PYTHON, the interpreter that runs sicog.
#   $PYTHON when set; else the project's venv (.venv/bin/python, made by scripts/install.sh) when
#   present, so a wrapper works without activating it; else python3 from PATH.
_sicog_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then
  SICOG_PYTHON="$PYTHON"
elif [ -x "$_sicog_repo/.venv/bin/python" ]; then
  SICOG_PYTHON="$_sicog_repo/.venv/bin/python"
else
  SICOG_PYTHON=python3
fi
