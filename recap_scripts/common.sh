# Sourced by caption_inference.sh and reasoning_inference.sh: env vars -> `sicog sample` flags.
#
# Required: EXPERIMENT_NAME, MODEL_PATH, DATA_PATH, IMAGE_FOLDER.
# Optional (paper defaults): SPLIT (train; names the output), TEMPERATURE (0.7), TOP_P (0.9),
#   BEAMS (1), NUM_CANDIDATES (6), AUGMENT_METHODS (none; comma/space separated corruptions:
#   gaussian_blur color_jitter mirror_rotate mask, plus "none" for the clean image),
#   MAX_NEW_TOKENS (1200), BATCH_SIZE (32), SEED (0), ON_ERROR (raise|skip),
#   BACKEND (hf|openai) with API_BASE and API_KEY_ENV (name of the variable holding the key),
#   e.g. against `sicog serve CKPT --served-model-name NAME` (vLLM, docs/serving.md):
#   BACKEND=openai API_BASE=http://127.0.0.1:8000/v1 MODEL_PATH=NAME,
#   OUTPUT_ROOT (outputs), NPROC_PER_NODE (1; >1 runs under torchrun), NNODES, NODE_RANK,
#   MASTER_ADDR, MASTER_PORT for several nodes.
# Output: $OUTPUT_ROOT/$EXPERIMENT_NAME/${SPLIT}_${PROMPT}[_${augment}].jsonl (+ .summary.json).
# Re-running the same command resumes an interrupted run.
set -euo pipefail

EXPERIMENT_NAME="${EXPERIMENT_NAME:?set EXPERIMENT_NAME (names the output folder)}"
MODEL_PATH="${MODEL_PATH:?set MODEL_PATH (checkpoint folder, or the served model name with BACKEND=openai)}"
DATA_PATH="${DATA_PATH:?set DATA_PATH (LLaVA .json/.jsonl records to sample for)}"
IMAGE_FOLDER="${IMAGE_FOLDER:?set IMAGE_FOLDER (the records image paths are relative to it)}"
SPLIT="${SPLIT:-train}"
TEMPERATURE="${TEMPERATURE:-0.7}"
TOP_P="${TOP_P:-0.9}"
BEAMS="${BEAMS:-1}"
NUM_CANDIDATES="${NUM_CANDIDATES:-6}"
AUGMENT_METHODS="${AUGMENT_METHODS:-}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-1200}"
BATCH_SIZE="${BATCH_SIZE:-32}"
SEED="${SEED:-0}"
ON_ERROR="${ON_ERROR:-raise}"
BACKEND="${BACKEND:-hf}"
OUTPUT_ROOT="${OUTPUT_ROOT:-outputs}"

source "$(dirname "${BASH_SOURCE[0]}")/../training_scripts/common.sh"

# run_sample MODE : build the flags and launch `sicog sample` (torchrun for several processes).
run_sample() {
  local mode="$1"
  local augment="${AUGMENT_METHODS//[[:space:]]/,}"
  local tag="${SPLIT}_${PROMPT}"
  if [ -n "$augment" ]; then tag="${tag}_${augment//,/-}"; fi
  local out="$OUTPUT_ROOT/$EXPERIMENT_NAME/${tag}.jsonl"
  mkdir -p "$OUTPUT_ROOT/$EXPERIMENT_NAME"
  # --num-candidates, not --n: torchrun's own parser rejects "--n" as ambiguous.
  local args=(sample --model "$MODEL_PATH" --data "$DATA_PATH" --image-folder "$IMAGE_FOLDER"
    --out "$out" --mode "$mode" --num-candidates "$NUM_CANDIDATES" --temperature "$TEMPERATURE"
    --top-p "$TOP_P" --num-beams "$BEAMS" --max-new-tokens "$MAX_NEW_TOKENS"
    --batch-size "$BATCH_SIZE" --seed "$SEED" --on-error "$ON_ERROR" --backend "$BACKEND")
  if [ -n "$augment" ]; then args+=(--corruption "$augment"); fi
  if [ "$BACKEND" = "openai" ]; then
    args+=(--api-base "${API_BASE:?set API_BASE with BACKEND=openai}" --api-key-env "${API_KEY_ENV:-OPENAI_API_KEY}")
  fi
  echo "sicog sample -> $out" >&2
  sicog_launch "${args[@]}"
}

# sample_for_prompt SCRIPT PROMPT:MODE... : run_sample with the mode that $PROMPT names (the first
# pair's prompt is the default), or exit 2 naming the prompts SCRIPT accepts.
sample_for_prompt() {
  local script="$1" pair names=()
  shift
  PROMPT="${PROMPT:-${1%%:*}}"
  for pair in "$@"; do
    names+=("${pair%%:*}")
    if [ "${pair%%:*}" = "$PROMPT" ]; then
      run_sample "${pair#*:}"
      return
    fi
  done
  echo "$script: PROMPT must be one of ${names[*]}, got '$PROMPT'" >&2
  exit 2
}
