"""`sicog sample`: step 2 of SICOG - sample N candidate captions / CoT answers per input item.

The work is done by sicog.stages.sampling (items, runner, hf and openai backends); this module
holds the command-line interface.
"""

from __future__ import annotations

import argparse

from sicog.config_flags import add_config_arguments, config_from_args
from sicog.stages.sampling.config import SampleConfig

DESCRIPTION = """\
Step 2: sample N candidates per record (CoD / caption / CoT / direct / conv prompts).

usage: sicog sample [CONFIG.yaml] [flags]. CONFIG.yaml holds any of the settings below under
their field names (--batch-size is `batch_size:`, --n is `n:`, --no-progress is `progress:
false`); flags given on the command line override it. --model, --data, --out and --mode are
required, from either.

Input: LLaVA records (.json list or .jsonl; answers optional). Output: one JSONL line per
(record, corruption) with id, image, prompt, mode, candidates, corruption, meta. Corrupted
copies get the id '<record id>#<corruption>' (list 'none' in --corruption to also sample the
clean image under the plain id).

Resumable and exactly-once: run under `torchrun --nproc_per_node K -m sicog sample ...` to
shard records over K ranks; finished records go to OUT.parts/ as they complete, a re-run of the
same command continues where it stopped, and OUT (plus OUT.summary.json, which records the
settings and input fingerprints) appears atomically when every record is done. A re-run of a
finished OUT with the same settings does nothing; with other settings it is refused unless
--overwrite. OUT.lock keeps a second run off the same --out while one is writing it. --out
must not be, contain or lie inside --data, --image-folder or --model; image paths must stay
inside --image-folder unless --allow-images-outside-folder. Under torchrun spell --n as
--num-candidates (torchrun's own parser rejects "--n" as an ambiguous abbreviation of its flags).
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `sicog sample`: one per field of SampleConfig, plus the optional CONFIG.yaml."""
    add_config_arguments(p, SampleConfig)


def run(args: argparse.Namespace) -> int:
    """Run `sicog sample` with parsed flags (over CONFIG.yaml when given)."""
    from sicog.stages.sampling.runner import run_sampling

    run_sampling(config_from_args(SampleConfig, args))
    return 0
