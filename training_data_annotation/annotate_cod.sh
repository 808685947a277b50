#!/usr/bin/env bash
# Step 1, perception data: rewrite caption records into Chain-of-Description (+ direct descriptions)
# with a vision model behind an OpenAI-compatible API (GPT-4o by default, or a vLLM / SGLang server).
# Required: DATA_PATH (caption records, e.g. from `sicog convert allava-caption`), IMAGE_FOLDER,
#           OUTPUT_DIR; with the default endpoint, the API key in $OPENAI_API_KEY (or in the variable
#           API_KEY_ENV names).
# Optional: BASE_URL (https://api.openai.com/v1), MODEL (gpt-4o), API_KEY_ENV (OPENAI_API_KEY),
#           CONCURRENCY (8), REQUESTS_PER_MINUTE (0: none), TOKENS_PER_MINUTE (0: none),
#           TEMPERATURE (0.2), MAX_TOKENS (2048), MAX_RETRIES (6), PRICE_PER_1K_INPUT,
#           PRICE_PER_1K_OUTPUT (for the cost figure), DRY_RUN=1 (estimate only), PYTHON (default: the
#           project's .venv/bin/python when present, else python3).
# Writes $OUTPUT_DIR/{cod,dd,failures}.jsonl and summary.json; run it again to resume after a kill.
# Example:
#   DATA_PATH=data/sicog/allava_35k.jsonl IMAGE_FOLDER=data/allava OUTPUT_DIR=data/sicog/cod \
#     bash training_data_annotation/annotate_cod.sh
set -euo pipefail

: "${DATA_PATH:?set DATA_PATH to the caption records (.json/.jsonl)}"
: "${IMAGE_FOLDER:?set IMAGE_FOLDER to the folder the image paths are relative to}"
: "${OUTPUT_DIR:?set OUTPUT_DIR to the output folder}"
API_KEY_ENV="${API_KEY_ENV:-OPENAI_API_KEY}"
if [ -z "${BASE_URL:-}" ] && [ -z "${DRY_RUN:-}" ] && [ -z "${!API_KEY_ENV:-}" ]; then
  echo "annotate_cod.sh: set $API_KEY_ENV to your API key (or BASE_URL to a server that needs none)" >&2
  exit 2
fi

args=(annotate cod --data "$DATA_PATH" --image-folder "$IMAGE_FOLDER" --out "$OUTPUT_DIR"
      --base-url "${BASE_URL:-https://api.openai.com/v1}" --model "${MODEL:-gpt-4o}"
      --api-key-env "$API_KEY_ENV" --concurrency "${CONCURRENCY:-8}"
      --requests-per-minute "${REQUESTS_PER_MINUTE:-0}" --tokens-per-minute "${TOKENS_PER_MINUTE:-0}"
      --temperature "${TEMPERATURE:-0.2}" --max-tokens "${MAX_TOKENS:-2048}" --max-retries "${MAX_RETRIES:-6}"
      --price-per-1k-input "${PRICE_PER_1K_INPUT:-0}" --price-per-1k-output "${PRICE_PER_1K_OUTPUT:-0}")
if [ -n "${DRY_RUN:-}" ]; then args+=(--dry-run); fi
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/python.sh"
"$SICOG_PYTHON" -m sicog "${args[@]}"
