# Sourced by caption_quality_eval.sh and reasoning_quality_eval.sh: env vars -> `sicog curate` flags.
# Required: RAW_DATASET (candidates .jsonl from recap_scripts / `sicog sample`), OUTPUT_DIR
# Optional: ENCODER (minilm | nv-embed-v2:/path/to/NV-Embed-v2 | sentence-transformers folder),
#           MODEL_NAME_OR_PATH (the encoder, the paper README's name; ENCODER wins if both are set;
#           default minilm), THRESHOLD (0.9, include-self mean-cosine scale), SEED (0),
#           BATCH_SIZE (256), EXTRA_ARGS (more `sicog curate` flags),
#           NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (sharded under torchrun)
# Writes: $OUTPUT_DIR/curated.jsonl, $OUTPUT_DIR/pairs.jsonl, $OUTPUT_DIR/report/{stats.json,best_scores.png}
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../training_scripts/common.sh"

# run_curation TASK : curate $RAW_DATASET for TASK (caption | reasoning).
run_curation() {
  local task="$1"
  : "${RAW_DATASET:?set RAW_DATASET to the $task candidates .jsonl (output of sicog sample)}"
  : "${OUTPUT_DIR:?set OUTPUT_DIR to the folder for the curated data and report}"
  local encoder="${ENCODER:-${MODEL_NAME_OR_PATH:-minilm}}"
  local extra=()
  read -r -a extra <<< "${EXTRA_ARGS:-}"
  sicog_launch curate \
    --candidates "$RAW_DATASET" \
    --task "$task" \
    --encoder "$encoder" \
    --threshold "${THRESHOLD:-0.9}" \
    --seed "${SEED:-0}" \
    --batch-size "${BATCH_SIZE:-256}" \
    --out "$OUTPUT_DIR/curated.jsonl" \
    --report-dir "$OUTPUT_DIR/report" \
    "${extra[@]}"
  # DPO pairs of the kept items (chosen = the curated reply, rejected = its `rejected`), once: on node 0
  if [ "${NODE_RANK:-0}" = "0" ]; then
    "$PYTHON" -m sicog pairs --curated "$OUTPUT_DIR/curated.jsonl" --out "$OUTPUT_DIR/pairs.jsonl" \
      --heldout-fraction 0
  fi
}
