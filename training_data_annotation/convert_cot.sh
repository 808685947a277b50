#!/usr/bin/env bash
# Step 1, reasoning data: convert LLaVA-CoT answers (<SUMMARY> <CAPTION> <REASONING> <CONCLUSION>)
# into the four-step structured CoT and short answers.
# Required: DATA_PATH (LLaVA-CoT .json/.jsonl), OUTPUT_DIR.
# Optional: IMAGE_FOLDER (when set, records whose image is missing from it are skipped and counted),
#           PYTHON (default: the project's .venv/bin/python when present, else python3).
# Writes $OUTPUT_DIR/structured_cot.jsonl, $OUTPUT_DIR/short_answers.jsonl and
# structured_cot.jsonl.summary.json (records skipped, per reason, with file:line examples).
# Example:
#   DATA_PATH=data/llava_cot/train.jsonl OUTPUT_DIR=data/sicog/cot bash training_data_annotation/convert_cot.sh
set -euo pipefail

: "${DATA_PATH:?set DATA_PATH to the LLaVA-CoT records (.json/.jsonl)}"
: "${OUTPUT_DIR:?set OUTPUT_DIR to the output folder}"

args=(convert llava-cot --data "$DATA_PATH" --out-cot "$OUTPUT_DIR/structured_cot.jsonl"
      --out-short "$OUTPUT_DIR/short_answers.jsonl")
if [ -n "${IMAGE_FOLDER:-}" ]; then args+=(--image-folder "$IMAGE_FOLDER"); fi
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/python.sh"
"$SICOG_PYTHON" -m sicog "${args[@]}"
