#!/usr/bin/env bash
# Stage 0 - warm-up: fine-tune the base MLLM on a minimal annotated set, all parts tunable.
#   WARMUP=perception (CoD captions) or WARMUP=reasoning (structured CoT).
# Required: EXPERIMENT_NAME, PREV_STAGE_CHECKPOINT (the base model), DATA_PATH, IMAGE_FOLDER
# Optional: FINETUNE_LEARNING_RATE (2e-5), FINETUNE_BATCH (4 per device), ACCU_STEPS (1),
#           OUTPUT_ROOT, CONFIG_ROOT, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT,
#           DEEPSPEED_CONFIG
set -euo pipefail
source "$(dirname "$0")/common.sh"

: "${EXPERIMENT_NAME:?set EXPERIMENT_NAME (names the output folder)}"
: "${PREV_STAGE_CHECKPOINT:?set PREV_STAGE_CHECKPOINT to the base model checkpoint folder}"
: "${DATA_PATH:?set DATA_PATH to the CoD or CoT LLaVA JSON/JSONL file}"
: "${IMAGE_FOLDER:?set IMAGE_FOLDER to the folder the image paths are relative to}"
WARMUP="${WARMUP:-perception}"
case "$WARMUP" in perception|reasoning) ;; *) echo "WARMUP must be perception or reasoning" >&2; exit 2;; esac

sicog_launch train "$CONFIG_ROOT/stage0_warmup_${WARMUP}.yaml" \
  --set "model.checkpoint=$PREV_STAGE_CHECKPOINT" \
  --set "data.sources=[{path: '$DATA_PATH', image_folder: '$IMAGE_FOLDER'}]" \
  --set "training.learning_rate=${FINETUNE_LEARNING_RATE:-2e-5}" \
  --set "training.per_device_train_batch_size=${FINETUNE_BATCH:-4}" \
  --set "training.gradient_accumulation_steps=${ACCU_STEPS:-1}" \
  --set "training.output_dir=$OUTPUT_ROOT/$EXPERIMENT_NAME/stage0_warmup_${WARMUP}" \
  --set "$(deepspeed_flag)"
