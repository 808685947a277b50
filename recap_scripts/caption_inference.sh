#!/usr/bin/env bash
# Step 2, perception: sample N candidate captions per image with the warmed-up perception model.
# PROMPT=cod-default (Chain-of-Description, default) or default (direct detailed caption).
# All other variables: see recap_scripts/common.sh. Example:
#   EXPERIMENT_NAME=round1 MODEL_PATH=checkpoints/warmup_perception DATA_PATH=data/unlabeled.jsonl \
#   IMAGE_FOLDER=data/images NPROC_PER_NODE=8 bash recap_scripts/caption_inference.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sample_for_prompt caption_inference.sh cod-default:cod default:caption
