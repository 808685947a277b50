"""A checkpoint on a list of named benchmarks of any type (`benchmarks:` of `sicog evaluate` and
of `sicog run`'s `evaluation:`), each asked as VLMEvalKit asks it and scored as VLMEvalKit
scores it (sicog.eval.scores).

    benchmarks:
      MMStar: ~/LMUData/MMStar.tsv          # VLMEvalKit name -> its TSV
      POPE: ~/LMUData/POPE.tsv
      MMVet: {tsv: ~/LMUData/MMVet.tsv, judge_model: gpt-4-1106-preview, max_new_tokens: 512}
      # a mapping: tsv, kind (a custom name's scorer), limit, judge_model, max_new_tokens
      world: world:runs/world               # a world's benchmark (multiple choice)
    judge: {base_url: http://localhost:8000/v1, model: gpt-4o-mini, api_key_env: OPENAI_API_KEY}

Prompts, as VLMEvalKit's dataset classes build them for a model without its own prompts:
multiple choice → `sicog evaluate`'s prompt (VLMEvalKit's layout and instruction, --prompt-style);
yes/no, OCRBench, MM-Vet, MathVista → the `question` cell as it is (MME's and MathVista's already
carry their instructions); DocVQA / ChartQA / other open VQA → the question plus "Answer the
question using a single word or phrase.". Replies are greedy, at most `max_new_tokens` for multiple
choice and `open_max_new_tokens` for the rest.

Each benchmark gets its own folder `OUT/benchmarks/<name>/`: `predictions.tsv` (VLMEvalKit's
prediction table: the TSV's columns without `image`, plus `prediction`), `scores.json` (the
figures, the headline, per-item scores and the settings that made them) and, when judged,
`judge_cache.jsonl`. A benchmark whose scores.json records the same settings is not asked again,
so a list that grows, or a run that stopped half-way, redoes only what is missing.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from sicog.eval.scores.judge import Judge, JudgeCache, JudgeSettings
from sicog.eval.scores.registry import JUDGED, REQUIRED, kind_of, score_rows
from sicog.eval.scores.table import Row, as_vlmevalkit_reads, is_missing, read_table
from sicog.utils.io import SicogError, atomic_write, file_fingerprint, write_json

log = logging.getLogger(__name__)

VQA_SUFFIX = "\nAnswer the question using a single word or phrase."
IMAGE_REF_MAX_LEN = 64
FOLDER = "benchmarks"


def parse_benchmarks(value, where: str = "benchmarks") -> dict[str, dict]:
    """{name: {"tsv", "kind", "limit", "spec"}} of a `benchmarks:` mapping; errors name the key."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SicogError(f"key {where}: expected a mapping of benchmark name -> TSV or world:DIR")
    out = {}
    for name, spec in value.items():
        entry = spec if isinstance(spec, dict) else {"tsv": spec}
        unknown = set(entry) - {"tsv", "kind", "limit", "judge_model", "max_new_tokens"}
        if unknown or not isinstance(entry.get("tsv"), str):
            raise SicogError(f"key {where}.{name}: expected a TSV path, world:DIR, or {{tsv, kind, limit, judge_model, max_new_tokens}}"
                             + (f" (unknown keys {sorted(unknown)})" if unknown else ""))
        out[str(name)] = {"spec": entry["tsv"], "tsv": _resolve(entry["tsv"], f"{where}.{name}"),
                          "kind": kind_of(str(name), entry.get("kind")), "limit": entry.get("limit"),
                          "judge_model": entry.get("judge_model"), "max_new_tokens": entry.get("max_new_tokens")}
    return out


def _resolve(spec: str, where: str) -> Path:
    from sicog.data.bundle import bundle_file, read_manifest

    spec = str(Path(spec[len("world:"):]).expanduser()) if spec.startswith("world:") else str(Path(spec).expanduser())
    path = Path(spec)
    if path.is_dir():
        try:
            return bundle_file(path, "benchmark", read_manifest(path))
        except SicogError as e:
            raise SicogError(f"key {where}: {e}") from None
    if not path.is_file():
        raise SicogError(f"key {where}: file not found: {path}")
    return path


def judge_settings(value) -> JudgeSettings | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise SicogError("key judge: expected a mapping (base_url, model, api_key_env, max_retries, ...)")
    known = set(JudgeSettings.__dataclass_fields__)
    unknown = set(value) - known
    if unknown:
        raise SicogError(f"key judge: unknown keys {sorted(unknown)} (known: {', '.join(sorted(known))})")
    return JudgeSettings(**value)


def prompt_of(row: Row, kind: str, benchmark: str, prompt_style: str) -> str:
    if kind == "mcq":
        from sicog.eval.mcq import row_prompt

        return row_prompt(row.cells, prompt_style)
    question = row.cells.get("question", "")
    if kind == "vqa":
        return question + VQA_SUFFIX
    return question


def _images(rows: list[Row], raw: dict[str, str]) -> dict[str, bytes]:
    """index -> image bytes (MMBench-style references resolved)."""
    out = {}
    for r in rows:
        cell = raw.get(r.index, "").strip()
        if 0 < len(cell) <= IMAGE_REF_MAX_LEN:
            cell = raw.get(cell, "").strip()
            if len(cell) <= IMAGE_REF_MAX_LEN:
                raise SicogError(f"{r.where('image')}: names row {raw[r.index]!r}, which has no image")
        if not cell:
            continue
        try:
            out[r.index] = base64.b64decode(cell, validate=False)
        except (binascii.Error, ValueError) as e:
            raise SicogError(f"{r.where('image')}: not valid base64 ({e})") from None
    return out


def _read(entry: dict) -> tuple[list[Row], dict[str, bytes]]:
    required = tuple(c for c in REQUIRED[entry["kind"]] if c != "prediction") + ("image",)
    rows = read_table(entry["tsv"], required)
    if entry.get("limit"):
        rows = rows[: int(entry["limit"])]
    raw = {r.index: r.cells.pop("image") for r in rows}
    return rows, _images(rows, raw)


def _open(data: bytes | None, where: str):
    if data is None:
        return None
    from sicog.data.images import open_image

    return open_image(data, where)


def run_one(name: str, entry: dict, folder: Path, predict, open_predict, settings: dict, judge: JudgeSettings | None,
            prompt_style: str, batch_size: int, progress: bool) -> dict:
    """Ask and score one benchmark into `folder` (reused when its scores.json has these settings)."""
    from tqdm.auto import tqdm

    done = folder / "scores.json"
    if done.is_file():
        try:
            old = json.loads(done.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        if old.get("settings") == json.loads(json.dumps(settings)):
            log.info("%s: scored before with these settings: reused", name)
            return old
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows, images = _read(entry)
    kind = entry["kind"]
    ask = predict if kind == "mcq" else open_predict
    if entry.get("max_new_tokens") and hasattr(ask, "with_max_new_tokens"):
        ask = ask.with_max_new_tokens(int(entry["max_new_tokens"]))
    replies: list[str] = []
    bar = tqdm(total=len(rows), desc=f"ask {name}", unit="item", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        pairs = [(prompt_of(r, kind, name, prompt_style), _open(images.get(r.index), r.where("image"))) for r in chunk]
        replies += ask(pairs)
        bar.update(len(chunk))
    bar.close()
    for r, reply in zip(rows, replies):
        r.cells["prediction"] = as_vlmevalkit_reads(reply)   # an empty reply is "nan" to VLMEvalKit
    columns = list(rows[0].cells)
    with atomic_write(folder / "predictions.tsv") as fh:  # csv quoting keeps tabs and newlines of replies
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([r.cells.get(c, "") for c in columns] for r in rows)
    judged = kind in JUDGED
    if judged and judge is None:
        raise SicogError(f"benchmark {name}: {kind} needs an LLM judge: set `judge:` (base_url, model, api_key_env)")
    scores = score_rows(rows, name, kind, judge=Judge(judge) if judged else None,
                        cache=JudgeCache(folder / "judge_cache.jsonl") if judged else None,
                        workers=judge.workers if judged else 1, progress=progress)
    result = {**scores.as_dict(), "items": scores.items, "scale": scores.scale,
              "tsv": str(entry["tsv"]), "predictions": "predictions.tsv", "seconds": round(time.time() - started, 2),
              "settings": settings}
    write_json(done, result)
    log.info("%s (%s): %s = %.4f over %d items", name, scores.kind, scores.headline, scores.value, len(rows))
    return json.loads(json.dumps(result))


def benchmark_settings(entry: dict, common: dict, judge: JudgeSettings | None) -> dict:
    return {**common, "tsv": file_fingerprint(entry["tsv"]), "kind": entry["kind"], "limit": entry.get("limit"),
            "max_new_tokens_here": entry.get("max_new_tokens"),
            "judge": ({k: v for k, v in asdict(judge).items() if k in ("base_url", "model")}
                      if judge is not None and entry["kind"] in JUDGED else None)}


def evaluate_list(benchmarks: dict[str, dict], out: Path, predict, open_predict, common: dict,
                  judge: JudgeSettings | None, prompt_style: str, batch_size: int, progress: bool = True) -> dict:
    """{name: scores.json content} for every benchmark, each in OUT/benchmarks/<name>/."""
    import dataclasses

    results = {}
    for name, entry in benchmarks.items():
        own = dataclasses.replace(judge, model=entry["judge_model"]) if judge and entry.get("judge_model") else judge
        settings = benchmark_settings(entry, common, own)
        results[name] = run_one(name, entry, out / FOLDER / name, predict, open_predict, settings, own,
                                prompt_style, batch_size, progress)
    return results


def rescore(folder: Path, name: str, kind: str):
    """The Scores of a finished benchmark folder, re-read from its predictions (no judge: judged
    benchmarks come from their cache), for resampling figures that are not item means."""
    rows = read_table(folder / "predictions.tsv", REQUIRED[kind])
    for r in rows:
        if is_missing(r.cells.get("prediction")):
            r.cells["prediction"] = ""
    return score_rows(rows, name, kind, cache=JudgeCache(folder / "judge_cache.jsonl") if kind in JUDGED else None,
                      progress=False)
