"""The settings of `sicog curate`, declared once: `sicog curate [CONFIG.yaml] [flags]`.

The flags are generated from `CurateConfig` (sicog.config_flags); a YAML file holds the same
settings under the field names (`min_candidates: 3`), and flags given on the command line
override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sicog.config_flags import setting
from sicog.stages.curation.items import TASKS
from sicog.utils.fields import ConfigError
from sicog.utils.io import file_fingerprint

DTYPES = ("auto", "float32", "float16", "bfloat16")
DEFAULT_THRESHOLD = 0.9  # the paper's main setting; used when neither --threshold nor --keep-fraction is given


@dataclass
class CurateConfig:
    """Settings of one curation run (candidates, out and task are required)."""

    candidates: str | None = setting(None, "candidates .jsonl from `sicog sample` (or a .json list)",
                                     required=True)
    out: str | None = setting(None, "curated LLaVA-format .jsonl (kept items only; written atomically)",
                              required=True)
    task: str | None = setting(None, "caption: modes cod/caption/conv (default cod); reasoning: modes "
                                     "cot/direct/conv (default cot); a record's `mode` picks its extraction",
                               required=True, choices=TASKS)
    encoder: str = setting("minilm", "minilm | nv-embed-v2:PATH | sentence-transformers folder or cached name")
    threshold: float | None = setting(None, "keep an item iff its best score >= this, on the include-self "
                                            "mean-cosine scale (paper: 0.9 main, 0.85 and 0.8 also reported; "
                                            f"default {DEFAULT_THRESHOLD} unless --keep-fraction)", min=-1.0, max=1.0)
    keep_fraction: float | None = setting(None, "instead of --threshold: keep this fraction (0, 1] of the scored "
                                                "items, those with the highest best score (ties: input order), "
                                                "counted over every rank's items", min=0.0, min_exclusive=True,
                                          max=1.0)
    batch_size: int = setting(256, "texts per encoder forward pass", min=1)
    report_dir: str | None = setting(None, "write stats.json and best_scores.png (histogram with the threshold) here")
    seed: int = setting(0, "seed of the rejected picks (per item: sha256 of SEED:ID)")
    min_candidates: int = setting(2, "fewest usable candidates an item needs to be scored and kept",
                                 min=1)
    chunk_items: int = setting(20000, "items per encode-and-score chunk (one encoder call each; bounds memory, "
                                      "and finished chunks survive a kill)", min=1)
    device: str = setting("auto", "encoder device: auto (GPU LOCAL_RANK if any, else cpu), cpu, cuda:0")
    dtype: str = setting("auto", "encoder weights dtype (auto: float16 for nv-embed-v2 on GPU, else the "
                                 "model's own)", choices=DTYPES)
    max_seq_length: int | None = setting(None, "encoder max tokens (default: the model's own; nv-embed-v2: 1024 "
                                               "caption / 512 reasoning)", min=1)
    instruction: str | None = setting(None, "nv-embed-v2 only: prefix every text with 'Instruct: TEXT\\nQuery: ' "
                                            "(default none, as the authors)")
    overwrite: bool = setting(False, "replace what --out (with its pairs and report) holds of other settings "
                                     "and curate again; without it other settings are refused (an output of the "
                                     "same settings is kept either way: nothing to do)")
    progress: bool = setting(True, "no progress bar", invert="--no-progress")
    wait_timeout: float = setting(6 * 3600.0, "rank 0 without a process group: seconds to wait for the other "
                                              "ranks' parts", cli=False, min=0.0, min_exclusive=True)

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "pairs_out": "`sicog pairs --curated OUT --out PAIRS.jsonl` writes the DPO pairs (from the curated "
                     "records' `rejected`)"}

    def validate(self) -> None:
        """The rules between settings (each setting's own range: sicog.config_flags.check_config)."""
        if self.threshold is not None and self.keep_fraction is not None:
            raise ConfigError(f"{self.threshold} given with --keep-fraction {self.keep_fraction}: the two are "
                              "exclusive, give one", key="threshold", flag="--threshold")
        # outputs against the inputs (--candidates, an encoder folder): curation/outputs.claim_outputs

    def cut(self) -> dict:
        """The keep rule, as `scoring.keep_decisions` takes it: {"threshold": T} or {"keep_fraction": F}."""
        if self.keep_fraction is not None:
            return {"keep_fraction": self.keep_fraction}
        return {"threshold": DEFAULT_THRESHOLD if self.threshold is None else self.threshold}

    def run_key(self) -> dict:
        """What a resumed run must share with the run whose parts it continues."""
        return {"candidates": file_fingerprint(self.candidates), "task": self.task,
                "encoder": self.encoder, "threshold": self.cut().get("threshold"),
                "keep_fraction": self.keep_fraction, "seed": self.seed,
                "min_candidates": self.min_candidates, "max_seq_length": self.max_seq_length,
                "instruction": self.instruction, "dtype": self.dtype}
