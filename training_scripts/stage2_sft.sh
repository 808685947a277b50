#!/usr/bin/env bash
# Stage 2 - visual instruction tuning of the previous stage's model, all parts.
# Required: EXPERIMENT_NAME, PREV_STAGE_CHECKPOINT, DATA_PATH, IMAGE_FOLDER
# Optional: FINETUNE_LEARNING_RATE (2e-5), FINETUNE_BATCH (4 per device), ACCU_STEPS (1),
#           OUTPUT_ROOT, CONFIG_ROOT, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT,
#           DEEPSPEED_CONFIG
set -euo pipefail
source "$(dirname "$0")/common.sh"

: "${EXPERIMENT_NAME:?set EXPERIMENT_NAME (names the output folder)}"
: "${PREV_STAGE_CHECKPOINT:?set PREV_STAGE_CHECKPOINT to the stage-1.5 (or stage-1) checkpoint folder}"
: "${DATA_PATH:?set DATA_PATH to the SFT LLaVA JSON/JSONL file}"
: "${IMAGE_FOLDER:?set IMAGE_FOLDER to the folder the image paths are relative to}"

sicog_launch train "$CONFIG_ROOT/stage2_sft.yaml" \
  --set "model.checkpoint=$PREV_STAGE_CHECKPOINT" \
  --set "data.sources=[{path: '$DATA_PATH', image_folder: '$IMAGE_FOLDER'}]" \
  --set "training.learning_rate=${FINETUNE_LEARNING_RATE:-2e-5}" \
  --set "training.per_device_train_batch_size=${FINETUNE_BATCH:-4}" \
  --set "training.gradient_accumulation_steps=${ACCU_STEPS:-1}" \
  --set "training.output_dir=$OUTPUT_ROOT/$EXPERIMENT_NAME/stage2_sft" \
  --set "$(deepspeed_flag)"
