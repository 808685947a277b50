#!/usr/bin/env bash
# Step 3 for reasoning: self-consistency curation of structured-CoT / direct-answer candidates
# (`sicog curate`). Environment variables: see quality_evaluation/common.sh (RAW_DATASET, OUTPUT_DIR required).
set -euo pipefail
source "$(dirname "$0")/common.sh"
run_curation reasoning
