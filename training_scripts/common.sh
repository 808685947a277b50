# Sourced by the stage scripts: the launcher line shared by every stage.
# NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT describe the cluster (read by
# sicog/pipeline/launch.py; defaults: one process on this machine); DEEPSPEED_CONFIG picks ZeRO-2/3 (default: configs/deepspeed/zero2.json).
set -euo pipefail

# Paths given by the user stay relative to where the script is called from; the repository's own
# configs are found next to this script.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTPUT_ROOT="${OUTPUT_ROOT:-checkpoints}"
CONFIG_ROOT="${CONFIG_ROOT:-$REPO_ROOT/configs/qwen2_7b}"

# sicog_launch ARGS... : `python -m sicog ARGS` alone, or under torchrun for several processes. The
# launch line and its defaults live in one place, sicog/pipeline/launch.py, shared with `sicog run`.
# The interpreter: $PYTHON, else the project's .venv/bin/python when present, else python3.
source "$REPO_ROOT/scripts/python.sh"
sicog_launch() {
  "$SICOG_PYTHON" -m sicog.pipeline.launch "$@"
}

# deepspeed_flag : the --set for the DeepSpeed config ("none" trains without DeepSpeed).
deepspeed_flag() {
  local ds="${DEEPSPEED_CONFIG:-$REPO_ROOT/configs/deepspeed/zero2.json}"
  if [ "$ds" = "none" ]; then echo "training.deepspeed=null"; else echo "training.deepspeed=$ds"; fi
}
