#!/usr/bin/env bash
# Stage 1.5 - multimodal pre-training on curated self-generated data, restarting from the
# ORIGINAL LLM (LLM_CKPT_DIR) + the stage-1 projector (MM_PROJECTOR_CHECKPOINT); all parts.
# Required: EXPERIMENT_NAME, DATA_PATH (curated JSONL), IMAGE_FOLDER, VISION_TOWER, LLM_CKPT_DIR,
#           MM_PROJECTOR_CHECKPOINT
# Optional: TEXT_DATA_PATH + TEXT_ONLY_RATIO (text-only data for language-ability preservation;
#           TEXT_ONLY_RATIO, default 0.1, is the SHARE of the stage's samples that are text-only:
#           0.1 = 10% text-only, 90% curated - the same meaning as the pipeline's
#           mixture.text_only_ratio; it is passed as `share` of the text source),
#           FINETUNE_LEARNING_RATE (2e-5), FINETUNE_BATCH (4 per device), ACCU_STEPS (1),
#           OUTPUT_ROOT, CONFIG_ROOT, NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT,
#           DEEPSPEED_CONFIG
set -euo pipefail
source "$(dirname "$0")/common.sh"

: "${EXPERIMENT_NAME:?set EXPERIMENT_NAME (names the output folder)}"
: "${DATA_PATH:?set DATA_PATH to the curated LLaVA JSONL (output of sicog curate)}"
: "${IMAGE_FOLDER:?set IMAGE_FOLDER to the folder the image paths are relative to}"
: "${VISION_TOWER:?set VISION_TOWER to a local CLIP folder}"
: "${LLM_CKPT_DIR:?set LLM_CKPT_DIR to the original LLM folder (not a warmed-up model)}"
: "${MM_PROJECTOR_CHECKPOINT:?set MM_PROJECTOR_CHECKPOINT to the mm_projector.safetensors written by stage 1}"

if [ -n "${TEXT_DATA_WEIGHT:-}" ]; then
  echo "stage15_pretrain.sh: TEXT_DATA_WEIGHT was replaced by TEXT_ONLY_RATIO, the share of samples" \
       "that are text-only (0.1 = 10%); TEXT_DATA_WEIGHT was a weight relative to the curated data's" \
       "1.0 (0.1 gave ~9%). Unset it and set TEXT_ONLY_RATIO instead." >&2
  exit 2
fi

SOURCES="{path: '$DATA_PATH', image_folder: '$IMAGE_FOLDER', weight: 1.0}"
if [ -n "${TEXT_DATA_PATH:-}" ]; then
  SOURCES="$SOURCES, {path: '$TEXT_DATA_PATH', share: ${TEXT_ONLY_RATIO:-0.1}}"
fi

sicog_launch train "$CONFIG_ROOT/stage15_pretrain.yaml" \
  --set "model.vision_tower=$VISION_TOWER" \
  --set "model.language_model=$LLM_CKPT_DIR" \
  --set "model.mm_projector=$MM_PROJECTOR_CHECKPOINT" \
  --set "data.sources=[$SOURCES]" \
  --set "training.learning_rate=${FINETUNE_LEARNING_RATE:-2e-5}" \
  --set "training.per_device_train_batch_size=${FINETUNE_BATCH:-4}" \
  --set "training.gradient_accumulation_steps=${ACCU_STEPS:-1}" \
  --set "training.output_dir=$OUTPUT_ROOT/$EXPERIMENT_NAME/stage15_pretrain" \
  --set "$(deepspeed_flag)"
