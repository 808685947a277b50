#!/usr/bin/env bash
# Post-training - DPO of a stage-2 model on preference pairs (`sicog pairs`), the paper's objective
# (configs/qwen2_7b/dpo.yaml: sigmoid DPO, beta 0.1, + the chosen reply's LM loss, frozen reference).
# Required: EXPERIMENT_NAME, PREV_STAGE_CHECKPOINT, PAIRS_PATH, IMAGE_FOLDER
# Optional: HELDOUT_PATH (held-out pairs, scored before and after), DPO_BETA (0.1), DPO_LOSS (sigmoid|ipo),
#           SFT_WEIGHT (1.0), DPO_LEARNING_RATE (5e-7), DPO_BATCH (2 per device), ACCU_STEPS (1),
#           OUTPUT_ROOT, CONFIG_ROOT, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT,
#           DEEPSPEED_CONFIG (default here: configs/deepspeed/zero3.json)
set -euo pipefail
source "$(dirname "$0")/common.sh"

: "${EXPERIMENT_NAME:?set EXPERIMENT_NAME (names the output folder)}"
: "${PREV_STAGE_CHECKPOINT:?set PREV_STAGE_CHECKPOINT to the stage-2 checkpoint folder to post-train}"
: "${PAIRS_PATH:?set PAIRS_PATH to the preference pairs .jsonl (sicog pairs --out)}"
: "${IMAGE_FOLDER:?set IMAGE_FOLDER to the folder the image paths are relative to}"
DEEPSPEED_CONFIG="${DEEPSPEED_CONFIG:-$REPO_ROOT/configs/deepspeed/zero3.json}"

heldout="null"
if [ -n "${HELDOUT_PATH:-}" ]; then heldout="$HELDOUT_PATH"; fi

sicog_launch dpo "$CONFIG_ROOT/dpo.yaml" \
  --set "model.checkpoint=$PREV_STAGE_CHECKPOINT" \
  --set "data.sources=[{path: '$PAIRS_PATH', image_folder: '$IMAGE_FOLDER'}]" \
  --set "dpo.heldout=$heldout" \
  --set "dpo.heldout_image_folder=$IMAGE_FOLDER" \
  --set "dpo.beta=${DPO_BETA:-0.1}" \
  --set "dpo.loss_type=${DPO_LOSS:-sigmoid}" \
  --set "dpo.sft_weight=${SFT_WEIGHT:-1.0}" \
  --set "training.learning_rate=${DPO_LEARNING_RATE:-5e-7}" \
  --set "training.per_device_train_batch_size=${DPO_BATCH:-2}" \
  --set "training.gradient_accumulation_steps=${ACCU_STEPS:-1}" \
  --set "training.output_dir=$OUTPUT_ROOT/$EXPERIMENT_NAME/dpo" \
  --set "$(deepspeed_flag)"
