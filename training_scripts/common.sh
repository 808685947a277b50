# Sourced by the stage scripts: the launcher line shared by every stage.
# NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT describe the cluster (defaults: one
# process on this machine); DEEPSPEED_CONFIG picks ZeRO-2/3 (default: configs/deepspeed/zero2.json).
set -euo pipefail

NPROC_PER_NODE="${NPROC_PER_NODE:-1}"
NNODES="${NNODES:-1}"
NODE_RANK="${NODE_RANK:-0}"
MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"
MASTER_PORT="${MASTER_PORT:-29500}"
# Paths given by the user stay relative to where the script is called from; the repository's own
# configs are found next to this script.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUTPUT_ROOT="${OUTPUT_ROOT:-checkpoints}"
CONFIG_ROOT="${CONFIG_ROOT:-$REPO_ROOT/configs/qwen2_7b}"

# sicog_launch ARGS... : `python -m sicog ARGS` alone, or under torchrun for several processes.
sicog_launch() {
  if [ "$NPROC_PER_NODE" -gt 1 ] || [ "$NNODES" -gt 1 ]; then
    torchrun --nproc_per_node "$NPROC_PER_NODE" --nnodes "$NNODES" --node_rank "$NODE_RANK" \
      --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" -m sicog "$@"
  else
    python -m sicog "$@"
  fi
}

# deepspeed_flag : the --set for the DeepSpeed config ("none" trains without DeepSpeed).
deepspeed_flag() {
  local ds="${DEEPSPEED_CONFIG:-$REPO_ROOT/configs/deepspeed/zero2.json}"
  if [ "$ds" = "none" ]; then echo "training.deepspeed=null"; else echo "training.deepspeed=$ds"; fi
}
