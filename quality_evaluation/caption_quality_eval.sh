#!/usr/bin/env bash
# Step 3 for captions: self-consistency curation of CoD / caption candidates (`sicog curate`).
# Environment variables: see quality_evaluation/common.sh (RAW_DATASET, OUTPUT_DIR required).
set -euo pipefail
source "$(dirname "$0")/common.sh"
run_curation caption
