#!/usr/bin/env bash
# Step 2, reasoning: sample N candidate answers per image-question pair with the warmed-up
# reasoning model. PROMPT=cot-default (structured step-by-step answer, default) or default (the
# question as a short-answer request). All other variables: see recap_scripts/common.sh. Example:
#   EXPERIMENT_NAME=round1 MODEL_PATH=checkpoints/warmup_reasoning DATA_PATH=data/vqa.jsonl \
#   IMAGE_FOLDER=data/images AUGMENT_METHODS=none,mask bash recap_scripts/reasoning_inference.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sample_for_prompt reasoning_inference.sh cot-default:cot default:direct
