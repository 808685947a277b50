"""`sicog curate`: step 3 of SICOG - keep, per item, the candidate most consistent with its siblings.

Input: candidate records from `sicog sample` (id, image, prompt, mode, candidates, corruption,
meta). Output: LLaVA training records whose gpt turn is the FULL chosen candidate (all steps),
plus `scores`, `chosen_index`, `score`, `rejected`; optional DPO pairs and a report.
The work is done by sicog.stages.curation (items/extraction, encoders, scoring, report, runner).

Degenerate input - outcome (each counted in the report's "degenerate" block, never a crash):
- 0 candidates: dropped ("no_candidates").
- a candidate that is empty / whitespace, or whose extraction fails (CoD without a Step 5 body,
  CoT without "The answer is" nor a conclusion): excluded from scoring and never chosen, counted
  by kind in "extraction_failures_by_kind"; its score is null.
- every extraction fails (all empty included): dropped ("all_extractions_failed").
- fewer than --min-candidates (default 2) usable candidates, e.g. a record with 1 candidate:
  dropped ("too_few_valid_candidates"). Why: on the include-self scale a lone candidate scores
  exactly 1.0, which would pass any threshold with no evidence of agreement. --min-candidates 1
  keeps it (score 1.0, no rejected).
- identical candidates: all score 1.0 (include-self), chosen = index 0, kept at any threshold
  <= 1; counted ("identical_candidates"); no DPO pair (chosen == rejected).
- non-ASCII text: handled as any text (UTF-8 in and out, ensure_ascii off).
"""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Step 3: self-consistency curation of sampled candidates (METHOD.md step 3).

Per item: extract the comparable part of each candidate (mode cod -> the Step 5 description;
cot -> the final answer after "The answer is", else the conclusion step; caption / direct /
conv -> the whole text), embed all unique extracted texts in one batched encoder call (per
chunk), L2-normalise, and score

    s_i = mean_j cos(e_i, e_j) over the item's usable candidates, j = i INCLUDED

(the paper's scale: the self term adds 1/n and does not change the ranking; the default
--threshold 0.9 is the paper's main set on this scale). Scores are rounded to 6 decimals.
chosen = argmax (ties -> lowest index). rejected = a uniform pick from the lower half of the
ranking (usable candidates by score desc, index asc; the lower half is the last floor(n/2):
n=6 -> ranks 4-6, n=5 -> ranks 4-5), seeded by sha256("SEED:ID") so it does not depend on
order or sharding. The item is kept iff its best score >= --threshold. The kept record's gpt
turn is the FULL chosen candidate (all steps).

Degenerate input: 0 candidates -> dropped; empty / unextractable candidates -> excluded from
scoring and never chosen (counted by kind); all extractions failed -> dropped; fewer than
--min-candidates usable candidates (default 2; a lone candidate would score 1.0 on the
include-self scale) -> dropped; identical candidates -> score 1.0, chosen index 0, no DPO pair;
non-ASCII text -> handled normally. All are counted in the report.

Outputs appear atomically. Under `torchrun --nproc_per_node K -m sicog curate ...` rank r takes
items i % K == r into OUT.parts/, and rank 0 merges exactly once; a re-run with the same
settings resumes.

Encoders (--encoder): minilm (bundled all-MiniLM-L6-v2, offline); nv-embed-v2:PATH (the
paper's NV-Embed-v2 from a local folder: trust_remote_code, EOS appended, right padding, max
length 1024 captions / 512 reasoning as the authors, no instruction unless --instruction);
any sentence-transformers folder, or a name already in the local HF cache. Nothing is
downloaded.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `sicog curate` (issue 5)."""
    p.add_argument("--candidates", required=True, help="candidates .jsonl from `sicog sample` (or a .json list)")
    p.add_argument("--out", required=True, help="curated LLaVA-format .jsonl (kept items only; written atomically)")
    p.add_argument("--task", required=True, choices=("caption", "reasoning"),
                   help="caption: modes cod/caption/conv (default cod); reasoning: modes cot/direct/conv "
                        "(default cot); a record's `mode` picks its extraction")
    p.add_argument("--encoder", default="minilm",
                   help="minilm | nv-embed-v2:PATH | sentence-transformers folder or cached name (default: minilm)")
    p.add_argument("--threshold", type=float, default=0.9,
                   help="keep an item iff its best score >= this, on the include-self mean-cosine scale "
                        "(paper: 0.9 main, 0.85 and 0.8 also reported)")
    p.add_argument("--batch-size", type=int, default=256, help="texts per encoder forward pass")
    p.add_argument("--pairs-out", default=None,
                   help="also write DPO pairs .jsonl (id, image, prompt, chosen, rejected) for kept items "
                        "whose rejected differs from chosen")
    p.add_argument("--report-dir", default=None,
                   help="write stats.json and best_scores.png (histogram with the threshold) here")
    p.add_argument("--seed", type=int, default=0, help="seed of the rejected picks (per item: sha256 of SEED:ID)")
    p.add_argument("--min-candidates", type=int, default=2,
                   help="fewest usable candidates an item needs to be scored and kept (default 2)")
    p.add_argument("--chunk-items", type=int, default=20000,
                   help="items per encode-and-score chunk (one encoder call each; bounds memory, "
                        "and finished chunks survive a kill)")
    p.add_argument("--device", default="auto", help="encoder device: auto (GPU LOCAL_RANK if any, else cpu), cpu, cuda:0")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                   help="encoder weights dtype (auto: float16 for nv-embed-v2 on GPU, else the model's own)")
    p.add_argument("--max-seq-length", type=int, default=None,
                   help="encoder max tokens (default: the model's own; nv-embed-v2: 1024 caption / 512 reasoning)")
    p.add_argument("--instruction", default=None,
                   help="nv-embed-v2 only: prefix every text with 'Instruct: TEXT\\nQuery: ' "
                        "(default none, as the authors)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run `sicog curate` with parsed flags."""
    from sicog.stages.curation.runner import CurateConfig, run_curation

    cfg = CurateConfig(
        candidates=args.candidates, out=args.out, task=args.task, encoder=args.encoder,
        threshold=args.threshold, batch_size=args.batch_size, pairs_out=args.pairs_out,
        report_dir=args.report_dir, seed=args.seed, min_candidates=args.min_candidates,
        chunk_items=args.chunk_items, device=args.device, dtype=args.dtype, max_seq_length=args.max_seq_length,
        instruction=args.instruction, progress=not args.no_progress,
    )
    run_curation(cfg)
    return 0
