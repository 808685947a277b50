#!/usr/bin/env bash
# Stage 1 - modality alignment: train the projector only on image-caption pairs.
# Required: EXPERIMENT_NAME, DATA_PATH, IMAGE_FOLDER, VISION_TOWER, LLM_CKPT_DIR
# Optional: PRETRAIN_LEARNING_RATE (2e-4), PRETRAIN_BATCH (8 per device), ACCU_STEPS (1),
#           OUTPUT_ROOT, CONFIG_ROOT, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT,
#           DEEPSPEED_CONFIG
# Writes $OUTPUT_ROOT/$EXPERIMENT_NAME/stage1_align/mm_projector.safetensors for stage 1.5.
set -euo pipefail
source "$(dirname "$0")/common.sh"

: "${EXPERIMENT_NAME:?set EXPERIMENT_NAME (names the output folder)}"
: "${DATA_PATH:?set DATA_PATH to the alignment LLaVA JSON/JSONL file}"
: "${IMAGE_FOLDER:?set IMAGE_FOLDER to the folder the image paths are relative to}"
: "${VISION_TOWER:?set VISION_TOWER to a local CLIP folder (e.g. clip-vit-large-patch14-336)}"
: "${LLM_CKPT_DIR:?set LLM_CKPT_DIR to a local LLM folder (e.g. Qwen2-7B-Instruct)}"

sicog_launch train "$CONFIG_ROOT/stage1_align.yaml" \
  --set "model.vision_tower=$VISION_TOWER" \
  --set "model.language_model=$LLM_CKPT_DIR" \
  --set "data.sources=[{path: '$DATA_PATH', image_folder: '$IMAGE_FOLDER'}]" \
  --set "training.learning_rate=${PRETRAIN_LEARNING_RATE:-2e-4}" \
  --set "training.per_device_train_batch_size=${PRETRAIN_BATCH:-8}" \
  --set "training.gradient_accumulation_steps=${ACCU_STEPS:-1}" \
  --set "training.output_dir=$OUTPUT_ROOT/$EXPERIMENT_NAME/stage1_align" \
  --set "$(deepspeed_flag)"
