"""`sicog curate`: step 3 of SICOG - keep, per item, the candidate most consistent with its siblings.

Input: candidate records from `sicog sample` (id, image, prompt, mode, candidates, corruption,
meta). Output: LLaVA training records whose gpt turn is the FULL chosen candidate (all steps),
plus `scores`, `chosen_index`, `score`, `rejected` (from which `sicog pairs` builds DPO pairs), and a
report.
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

from sicog.config_flags import add_config_arguments, config_from_args
from sicog.stages.curation.config import CurateConfig

DESCRIPTION = """\
Step 3: self-consistency curation of sampled candidates (docs/method.md, step 3).

usage: sicog curate [CONFIG.yaml] [flags]. CONFIG.yaml holds any of the settings below under
their field names (--keep-fraction is `keep_fraction:`, --no-progress is `progress: false`); flags
given on the command line override it. --candidates, --out and --task are required, from either.

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
order or sharding. The item is kept iff its best score >= --threshold; with --keep-fraction F
instead, once every rank is done, the round(F * n) of the n scored items with the highest best
score are kept (at least one; ties by input order), and the report names the score cut. The
kept record's gpt turn is the FULL chosen candidate (all steps). DPO pairs: `sicog pairs
--curated OUT` (chosen = the record's reply, rejected = its `rejected`).

Degenerate input: 0 candidates -> dropped; empty / unextractable candidates -> excluded from
scoring and never chosen (counted by kind); all extractions failed -> dropped; fewer than
--min-candidates usable candidates (default 2; a lone candidate would score 1.0 on the
include-self scale) -> dropped; identical candidates -> score 1.0, chosen index 0, no DPO pair;
non-ASCII text -> handled normally. All are counted in the report.

Outputs appear atomically, OUT last, with OUT.summary.json recording the settings and the
candidates' fingerprint. Under `torchrun --nproc_per_node K -m sicog curate ...` rank r takes
items i % K == r into OUT.parts/, and rank 0 merges exactly once; a re-run with the same
settings resumes, or does nothing when OUT is finished; other settings are refused unless
--overwrite. OUT.lock keeps a second run off the same --out while one is writing it. No output
may be, contain or lie inside --candidates or the encoder's folder.

Encoders (--encoder): minilm (bundled all-MiniLM-L6-v2, offline); nv-embed-v2:PATH (the
paper's NV-Embed-v2 from a local folder: trust_remote_code, EOS appended, right padding, max
length 1024 captions / 512 reasoning as the authors, no instruction unless --instruction);
any sentence-transformers folder, or a name already in the local HF cache. Nothing is
downloaded.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `sicog curate`: one per field of CurateConfig, plus the optional CONFIG.yaml."""
    add_config_arguments(p, CurateConfig)


def run(args: argparse.Namespace) -> int:
    """Run `sicog curate` with parsed flags (over CONFIG.yaml when given)."""
    from sicog.stages.curation.runner import run_curation

    run_curation(config_from_args(CurateConfig, args))
    return 0
