"""`sicog pairs`: preference pairs (`sicog.data.pairs` records) for `sicog dpo`, from

(a) curated records (`sicog curate --out`): chosen = the record's gpt turn, rejected = its
    `rejected` (a candidate from the lower half by self-consistency score, as curation drew it);
(b) corrupted-image candidates (`sicog sample --corruption ...`): chosen = the curated clean
    reply of the item's record, rejected = one of the candidates sampled from the corrupted
    image (a seeded pick among those that are non-empty and differ from chosen), the
    corruption recorded. The pair shows the clean image: the rejected reply is reasoning that
    saw a damaged one.

A pair with an empty side, identical sides, no rejected, or (b) no curated clean record is
skipped and counted by reason. Records are split, all pairs of one record together, into
training and held-out pairs by a seeded hash of the record id.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sicog.config_flags import add_config_arguments, check_config, config_from_args, setting
from sicog.data.formats import strip_image_token
from sicog.data.records import DataError, first_user_text, iter_json_objects, validate_training_record
from sicog.utils.io import SicogError, file_fingerprint, write_json, write_jsonl

log = logging.getLogger(__name__)

DESCRIPTION = """\
Build preference pairs for `sicog dpo` from curated records and corrupted-image candidates.

usage: sicog pairs [CONFIG.yaml] [flags]. --curated and --out are required (from either).
Pairs of (a) --curated: chosen = the curated reply, rejected = the record's `rejected`; of
(b) --corrupted (candidates `sicog sample --corruption` wrote, ids '<record id>#<corruption>'):
chosen = the curated clean reply of that record, rejected = a seeded pick among the candidates
sampled from the corrupted image. Empty or identical sides, a missing rejected or a missing
clean record are skipped and counted. Records are split into --out and --heldout-out by a
seeded hash of their id (a record's pairs stay together). OUT.summary.json records the
settings and counts; a re-run with the same settings does nothing, other settings are refused
unless --overwrite. A bad input line is an error naming file:line and the field.
"""


@dataclass
class PairsConfig:
    """Settings of one `sicog pairs` run (curated and out are required)."""

    curated: str | None = setting(None, "curated records .jsonl from `sicog curate --out`", required=True)
    corrupted: str | None = setting(None, "candidates .jsonl from `sicog sample --corruption ...` (rejected "
                                          "replies from corrupted images)")
    out: str | None = setting(None, "training pairs .jsonl (written atomically)", required=True)
    heldout_out: str | None = setting(None, "held-out pairs .jsonl (for `dpo.heldout`)")
    heldout_fraction: float = setting(0.1, "share of the records whose pairs go to --heldout-out (0: none)", min=0, max=1, max_exclusive=True)
    curated_pairs: bool = setting(True, "no pairs of kind (a): only corrupted-image pairs",
                                  invert="--no-curated-pairs")
    max_pairs: int | None = setting(None, "keep at most this many training pairs (a seeded pick; the rest "
                                          "counted as over_budget)", min=1)
    seed: int = setting(0, "seed of the rejected pick, the split and the budget pick")
    allow_empty: bool = setting(False, "write empty outputs (and the counts) instead of failing when no "
                                       "training pair is found")
    overwrite: bool = setting(False, "replace outputs made with other settings")

    def validate(self) -> None:
        """Rules across settings (each setting's range: sicog.config_flags.check_config)."""
        if self.heldout_fraction > 0 and not self.heldout_out:
            raise SicogError("--heldout-fraction > 0 needs --heldout-out (or set --heldout-fraction 0)")
        if not self.curated_pairs and not self.corrupted:
            raise SicogError("--no-curated-pairs leaves no pairs to build without --corrupted")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, PairsConfig)


def run(args: argparse.Namespace) -> int:
    build_pairs(config_from_args(PairsConfig, args))
    return 0


def _unit(seed: int, *key: str) -> float:
    """A uniform number in [0, 1) from (seed, key) alone: independent of order and sharding."""
    digest = hashlib.sha256(":".join([str(seed), *key]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _field(where: str, key: str, msg: str) -> DataError:
    return DataError(f"{where}: key '{key}': {msg}")


def read_curated(path: str) -> dict[str, dict]:
    """Curated records by id: {prompt, image, chosen, rejected, mode}."""
    out = {}
    for lineno, rec in iter_json_objects(path):
        where = f"{path}:{lineno}"
        validate_training_record(rec, where)
        if "id" not in rec:
            raise _field(where, "id", "missing (pairs are keyed by record id)")
        rejected = rec.get("rejected")
        if rejected is not None and not isinstance(rejected, str):
            raise _field(where, "rejected", f"must be a string or null, got {type(rejected).__name__}")
        if str(rec["id"]) in out:
            raise _field(where, "id", f"{rec['id']!r} appears twice")
        out[str(rec["id"])] = {"prompt": strip_image_token(first_user_text(rec)), "image": rec.get("image"),
                               "chosen": rec["conversations"][-1]["value"], "rejected": rejected,
                               "mode": rec.get("mode")}
    return out


def _pair(rid: str, clean: dict, rejected: str, source: str, corruption: str | None) -> dict:
    pair = {"id": rid, "prompt": clean["prompt"], "chosen": clean["chosen"].strip(), "rejected": rejected.strip(),
            "source": source, "corruption": corruption, "mode": clean["mode"]}
    if clean["image"]:
        pair["image"] = clean["image"]
    return pair


def curated_pairs(curated: dict[str, dict], skips: Counter) -> list[tuple[str, dict]]:
    """(record id, pair) of kind (a); skips counted under curated/<reason>."""
    out = []
    for rid, rec in curated.items():
        if rec["rejected"] is None:
            skips["curated/no_rejected"] += 1
        elif not rec["chosen"].strip() or not rec["rejected"].strip():
            skips["curated/empty"] += 1
        elif rec["chosen"].strip() == rec["rejected"].strip():
            skips["curated/identical"] += 1
        else:
            out.append((rid, _pair(rid, rec, rec["rejected"], "curated", None)))
    return out


def corrupted_pairs(path: str, curated: dict[str, dict], seed: int, skips: Counter) -> list[tuple[str, dict]]:
    """(record id, pair) of kind (b) from a candidates file; skips counted under corrupted/<reason>."""
    out = []
    for lineno, rec in iter_json_objects(path):
        where = f"{path}:{lineno}"
        if not isinstance(rec, dict):
            raise _field(where, "<record>", f"expected a JSON object, got {type(rec).__name__}")
        if not isinstance(rec.get("id"), (str, int)) or isinstance(rec.get("id"), bool):
            raise _field(where, "id", "missing, or not a string or integer")
        cands = rec.get("candidates")
        if not isinstance(cands, list) or not all(isinstance(c, str) for c in cands):
            raise _field(where, "candidates", "missing, or not a list of strings")
        corruption = rec.get("corruption")
        if corruption is not None and not isinstance(corruption, str):
            raise _field(where, "corruption", f"must be a string or null, got {type(corruption).__name__}")
        if corruption is None:
            skips["corrupted/clean_item"] += 1  # a candidate of the clean image: not a negative
            continue
        rid = str(rec["id"]).rsplit("#", 1)[0]
        clean = curated.get(rid)
        if clean is None:
            skips["corrupted/no_curated_record"] += 1
            continue
        usable = [c for c in cands if c.strip()]
        differing = [c for c in usable if c.strip() != clean["chosen"].strip()]
        if not usable or not clean["chosen"].strip():
            skips["corrupted/empty"] += 1
        elif not differing:
            skips["corrupted/identical"] += 1
        else:
            pick = differing[int(_unit(seed, "rejected", str(rec["id"])) * len(differing))]
            out.append((rid, _pair(f"{rid}#{corruption}", clean, pick, "corrupted", corruption)))
    return out


def _settings(cfg: PairsConfig) -> dict:
    return {"curated": file_fingerprint(cfg.curated),
            "corrupted": file_fingerprint(cfg.corrupted) if cfg.corrupted else None,
            "heldout_out": str(Path(cfg.heldout_out).resolve()) if cfg.heldout_out else None,
            "heldout_fraction": cfg.heldout_fraction, "curated_pairs": cfg.curated_pairs,
            "max_pairs": cfg.max_pairs, "seed": cfg.seed, "allow_empty": cfg.allow_empty}


def build_pairs(cfg: PairsConfig) -> dict:
    """Write OUT (and the held-out file) and OUT.summary.json; returns the summary's stats."""
    from sicog.utils import resumable
    from sicog.utils.lock import check_writable, output_locks
    from sicog.utils.paths import check_outputs_apart

    check_config(cfg)  # a config built in code: each setting's range, then validate()
    summary = resumable.summary_path(cfg.out)
    outputs = {"--out": cfg.out, "--out (its summary)": summary, "--heldout-out": cfg.heldout_out}
    check_outputs_apart(outputs, {"--curated": cfg.curated, "--corrupted": cfg.corrupted})
    for flag, path in (("--out", cfg.out), ("--heldout-out", cfg.heldout_out)):
        if path:
            check_writable(path, flag, "file")
    with output_locks({"--out": cfg.out, "--heldout-out": cfg.heldout_out}):
        want = _settings(cfg)
        finished = resumable.finished(cfg.out, want, cfg.overwrite)  # one process: no parts, only the summary
        if finished is not None:
            log.info("%s is up to date (same settings): nothing to do", cfg.out)
            return finished.get("stats") or {}
        skips: Counter = Counter()
        curated = read_curated(cfg.curated)  # every input is read and checked before anything is written
        found = curated_pairs(curated, skips) if cfg.curated_pairs else []
        if cfg.corrupted:
            found += corrupted_pairs(cfg.corrupted, curated, cfg.seed, skips)
        train = [p for rid, p in found if _unit(cfg.seed, "split", rid) >= cfg.heldout_fraction]
        heldout = [p for rid, p in found if _unit(cfg.seed, "split", rid) < cfg.heldout_fraction]
        if cfg.max_pairs is not None and len(train) > cfg.max_pairs:
            keep = set(sorted(range(len(train)), key=lambda i: _unit(cfg.seed, "budget", train[i]["id"]))
                       [: cfg.max_pairs])
            skips["over_budget"] += len(train) - len(keep)
            train = [p for i, p in enumerate(train) if i in keep]
        if not train and not cfg.allow_empty:
            raise SicogError(f"no training pairs from {cfg.curated}{' and ' + cfg.corrupted if cfg.corrupted else ''} "
                             f"(skipped: {dict(skips) or 'none'}; held out: {len(heldout)})")
        by_source = Counter(p["source"] for p in train)
        stats = {"curated_records": len(curated), "train_pairs": len(train), "heldout_pairs": len(heldout),
                 "train_by_source": dict(by_source), "skipped": dict(sorted(skips.items()))}
        summary.unlink(missing_ok=True)  # the old summary goes first and the new one comes last: a run
        if cfg.heldout_out:  # killed in between leaves no summary, never old pairs "up to date"
            write_jsonl(cfg.heldout_out, heldout)
        write_jsonl(cfg.out, train)
        write_json(summary, {"settings": want, "stats": stats})
    log.info("pairs: %d training, %d held out (by source %s); skipped %s", len(train), len(heldout),
             dict(by_source), dict(skips) or "none")
    return stats
