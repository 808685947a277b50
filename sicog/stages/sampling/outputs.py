"""The output of `sicog sample`: claimed before any work, recorded when finished.

- `claim_output`: --out (and its summary and parts) apart from every input (the data, the
  image folder, a model folder), and writable - before anything is read or written.
- `run_settings`: what decides the candidates plus fingerprints of the data file and of the
  model's files (size and time: sampling never re-reads 15 GB of weights to compare); kept in
  `OUT.parts/run.json` while the run is unfinished and in `OUT.summary.json` once it is done
  (what a finished or unfinished OUT of the same or other settings means, and what --overwrite
  removes: sicog.utils.resumable).
- `read_candidates`: what other commands read of a finished sampling.
"""

from __future__ import annotations

import os
from pathlib import Path

from sicog.data.records import iter_json_objects
from sicog.stages.sampling.config import SampleConfig
from sicog.utils.io import file_fingerprint
from sicog.utils.lock import as_recorded, check_writable
from sicog.utils.paths import check_outputs_apart
from sicog.utils.resumable import summary_path
from sicog.utils.shards import parts_dir


def run_settings(cfg: SampleConfig) -> dict:
    """What decides the candidates, with fingerprints of the data file and the model's files."""
    from sicog.utils.io import model_files_fingerprint

    want = cfg.determining(file_fingerprint(cfg.data))
    want["model_files"] = model_files_fingerprint(cfg.model) if cfg.backend == "hf" else None
    return as_recorded(want)


def claim_output(cfg: SampleConfig) -> None:
    """--out apart from every input and writable (before anything is read or written)."""
    out = Path(cfg.out)
    inputs = {"--data": cfg.data, "--image-folder": cfg.image_folder}
    if cfg.backend == "hf" or Path(cfg.model).exists():
        inputs["--model"] = cfg.model
    check_outputs_apart({"--out": out, "--out (its summary)": summary_path(out), "--out (its parts)": parts_dir(out)},
                        inputs)
    check_writable(out, "--out", "file")


def read_candidates(out: str | os.PathLike):
    """The candidate records of a sampling's OUT, in file order (errors name file:line)."""
    for _line, rec in iter_json_objects(out):
        yield rec
