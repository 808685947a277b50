"""Small data steps of `sicog run` and the counts each step records in its manifest.

- `uncurated`: the ablation arm without self-consistency — one seeded random candidate per item, for
  every item, for a seeded random subset as large as what curation kept (curation against chance at
  equal data) or for the very items curation kept, optionally among parseable candidates only, in the
  same training-record layout curation writes;
- `noised_truth`: ground truth with a share of its stated counts / answers made wrong by the
  registered label noiser (a share given, or that of the curated labels, judged by the noiser), the
  wrong values drawn uniformly or as the curated labels' wrong values are for the same true value;
- `companions`: a file's CoD / CoT records each followed by its direct description / short answer
  (`mixture.companions`: stage-1.5 data in the warm-up annotations' two forms);
- `head`: the first K records of a file (quick runs);
- `first_candidates`: the first n candidates per item of a larger sample (sweeps over N);
- `hold_out_probe`: images of the reasoning annotations held out as the round monitor's probe;
- counts read back from the outputs of `sicog sample`, `sicog curate` and `sicog evaluate` (each
  read by its command's own reader).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from sicog.data.formats import strip_image_token, to_cot_question, with_image_token
from sicog.data.records import first_user_text, iter_json_objects
from sicog.eval.outputs import read_summary
from sicog.pipeline.actions import count_lines
from sicog.pipeline.step import StepFailed
from sicog.stages.curation.items import extract
from sicog.stages.curation.outputs import read_curated, read_stats
from sicog.stages.sampling.outputs import read_candidates
from sicog.utils.io import SicogError, write_jsonl


def _records(path: str):
    for _line, rec in iter_json_objects(path):
        yield rec


def candidate_to_record(cand: dict, text: str) -> dict:
    """A LLaVA training record whose gpt turn is `text`, answering the candidate's prompt."""
    prompt = cand.get("prompt") or ""
    human = with_image_token(prompt) if cand.get("image") else prompt
    rec = {"id": cand["id"]}
    if cand.get("image"):
        rec["image"] = cand["image"]
    rec["conversations"] = [{"from": "human", "value": human}, {"from": "gpt", "value": text}]
    return rec


def uncurated_records(candidates_path: str, seed: int, n_items: int | None = None, *,
                      ids: set[str] | None = None, parse_mode: str | None = None) -> list[dict]:
    """One random non-empty candidate per item (seeded per item id, so order does not matter).

    `n_items`: keep a seeded random subset of that many items (file order kept); None: every item.
    `ids`: only these items (e.g. those curation kept). `parse_mode` (cod | cot): draw only among the
    candidates curation's extractor parses (sicog.stages.curation.items.extract); items with none
    are left out.
    """
    out = []
    for cand in read_candidates(candidates_path):
        if ids is not None and str(cand["id"]) not in ids:
            continue
        texts = [t for t in cand.get("candidates", []) if isinstance(t, str) and t.strip()
                 and (parse_mode is None or extract(t, parse_mode)[0] is not None)]
        if not texts:
            continue
        rng = random.Random(f"{seed}:{cand['id']}")
        choice = rng.randrange(len(texts))
        rec = candidate_to_record(cand, texts[choice])
        rec["chosen_index"] = choice
        out.append(rec)
    if n_items is not None and n_items < len(out):
        ids = sorted(str(r["id"]) for r in out)  # drawn from sorted ids: independent of file order
        keep = set(random.Random(f"{seed}:items").sample(ids, n_items))
        out = [r for r in out if str(r["id"]) in keep]
    return out


def uncurated_action(candidates_path: str, out_path: str, seed: int, match_path: str | None = None,
                     items: str = "matched", parse_mode: str | None = None):
    """`match_path`: the curated file whose record count (items: matched) or whose very items (items:
    kept) the uncurated arm takes (None: every item); `parse_mode`: parseable candidates only."""
    def action(step, engine) -> dict:
        n_items = count_lines(match_path) if match_path and items == "matched" else None
        ids = {str(r["id"]) for r in _records(match_path)} if match_path and items == "kept" else None
        records = uncurated_records(candidates_path, seed, n_items, ids=ids, parse_mode=parse_mode)
        write_jsonl(out_path, records)
        counts = {"records": len(records)}
        if n_items is not None:
            counts["matched_to"] = n_items
        if ids is not None:
            counts["kept_items"] = len(ids)
        return counts

    return action


def _gpt_text(rec: dict, role: str = "gpt") -> str:
    return next((t["value"] for t in rec.get("conversations", []) if t.get("from") == role), "")


def _with_gpt_text(rec: dict, text: str) -> dict:
    turns = [dict(t, value=text) if t.get("from") == "gpt" else t for t in rec["conversations"]]
    return {**rec, "conversations": turns}


def noised_records(truth: list[dict], share: float, task: str, noiser, seed: int,
                   errors: dict[str, Counter] | None = None) -> tuple[list[dict], int, int]:
    """The truth records with a seeded `share` of them given a wrong stated count / answer by `noiser`;
    with `errors` (true value -> the wrong values stated for it, `label_errors`) the wrong value is
    drawn with those weights, else uniformly.

    Returns (records in file order, items noised, items drawn that state nothing to make wrong)."""
    ids = sorted(str(r["id"]) for r in truth)
    chosen = set(random.Random(f"{seed}:noise").sample(ids, round(share * len(ids))))
    out, noised, unnoisable = [], 0, 0
    for rec in truth:
        if str(rec["id"]) in chosen:
            like = errors.get(noiser.stated(_gpt_text(rec), task)) if errors else None
            wrong = noiser.wrong(_gpt_text(rec), _gpt_text(rec, "human"), task, random.Random(f"{seed}:{rec['id']}"),
                                 like=like)
            if wrong is None:
                unnoisable += 1
            else:
                rec, noised = {**_with_gpt_text(rec, wrong), "noised": True}, noised + 1
        out.append(rec)
    return out, noised, unnoisable


def label_errors(labels_path: str, truth: list[dict], task: str, noiser) -> tuple[float, int, dict[str, Counter]]:
    """How labels are wrong against the truth of the same item, as the noiser judges: (the share wrong,
    items judged, true value -> Counter of the wrong values stated for it; a label stating none counts
    in the share only)."""
    by_id = {str(r["id"]): _gpt_text(r) for r in truth}
    judged, wrong, errors = 0, 0, defaultdict(Counter)
    for r in _records(labels_path):
        true = by_id.get(str(r["id"]))
        if true is None:
            continue
        judged += 1
        if noiser.is_wrong(_gpt_text(r), true, task):
            wrong += 1
            said = noiser.stated(_gpt_text(r), task)
            if said is not None:
                errors[noiser.stated(true, task)][said] += 1
    return (wrong / judged if judged else 0.0), judged, dict(errors)


def noised_truth_action(truth_path: str, out_path: str, task: str, seed: int, share: float | None,
                        labels_path: str | None, values_path: str | None = None):
    """A truth file with a share of its labels made wrong (`share`, or that of `labels_path` as judged),
    the wrong values drawn as those of `values_path` are for the same true value (None: uniformly)."""
    def action(step, engine) -> dict:
        from sicog.pipeline.hooks import label_noiser

        noiser = label_noiser()
        truth = list(_records(truth_path))
        counts: dict = {}
        s, errors, read = share, None, {}
        for path in {labels_path, values_path} - {None}:   # one pass per file (the built-in arm reads one)
            read[path] = label_errors(path, truth, task, noiser)
        if labels_path is not None:
            s, judged, _ = read[labels_path]
            counts.update(share_from=labels_path, labels_judged=judged)
        if values_path is not None:
            errors = read[values_path][2]
            counts.update(values_from=values_path, wrong_values_seen=sum(sum(c.values()) for c in errors.values()))
        records, noised, unnoisable = noised_records(truth, s, task, noiser, seed, errors)
        write_jsonl(out_path, records)
        return {**counts, "records": len(records), "share": round(s, 4), "noised": noised, "unnoisable": unnoisable}

    return action


def companions_action(in_path: str, out_path: str, task: str):
    """Every record of `in_path`, each followed by its companion (sicog.data.companions); a record
    whose label has nothing to take (no Step-5 description, no final answer) keeps its one form."""
    def action(step, engine) -> dict:
        from sicog.data.companions import companion

        records, added = [], 0
        for rec in _records(in_path):
            records.append(rec)
            extra = companion(rec, task)
            if extra is not None:
                records.append(extra)
                added += 1
        write_jsonl(out_path, records)
        return {"records": len(records), "companions": added, "without_companion": len(records) - 2 * added}

    return action


def first_candidates_action(candidates_path: str, out_path: str, n: int):
    """The first `n` candidates of every item of a larger sample (a sweep's smaller N, sicog.pipeline.sweep):
    candidates are drawn independently, so the first n of N are a sample of n with the same seed."""
    def action(step, engine) -> dict:
        records = []
        for rec in _records(candidates_path):
            if len(rec.get("candidates", [])) < n:
                raise StepFailed(f"{candidates_path}: item {rec.get('id')} has {len(rec.get('candidates', []))} "
                                 f"candidates, fewer than the {n} asked for")
            rec = {**rec, "candidates": rec["candidates"][:n]}
            rec["meta"] = {**(rec.get("meta") or {}), "first_of": candidates_path}
            records.append(rec)
        write_jsonl(out_path, records)
        return sample_counts(out_path)

    return action


def head_action(path: str, out_path: str, max_items: int | None):
    def action(step, engine) -> dict:
        records = []
        for rec in _records(path):
            if max_items is not None and len(records) >= max_items:
                break
            records.append(rec)
        write_jsonl(out_path, records)
        return {"records": len(records)}

    return action


def sample_counts(path: str) -> dict:
    items = cands = empty = 0
    for rec in read_candidates(path):
        items += 1
        c = rec.get("candidates", [])
        cands += len(c)
        empty += sum(1 for t in c if not str(t).strip())
    return {"items": items, "candidates": cands, "empty_candidates": empty}


def curate_counts(curated: str) -> dict:
    kept = sum(1 for _ in read_curated(curated))
    stats = read_stats(curated) or {}
    counts = {"kept": kept}
    for key in ("items", "kept", "dropped", "threshold", "keep_fraction", "score_cut", "extraction_failures"):
        if isinstance(stats.get(key), (int, float)):
            counts[f"stats_{key}"] = stats[key]
    return counts


def evaluate_counts(result_dir: str) -> dict:
    summary = read_summary(result_dir) or {}
    mcq = summary.get("mcq", summary)
    counts = {k: mcq[k] for k in ("accuracy", "n") if isinstance(mcq.get(k), (int, float))}
    cap = summary.get("captions") or {}
    counts.update({f"caption_{k}": cap[k] for k in ("object_recall", "hallucination_rate")
                   if isinstance(cap.get(k), (int, float))})
    return counts


def hold_out_probe(source: str, rest_path: str, probe_path: str, n_images: int, seed: int) -> dict:
    """`monitor.probe_heldout`: a seeded draw of `n_images` images of the reasoning annotations
    `source` becomes the round monitor's probe; every record of those images (the short-answer
    companions too) leaves the annotations written to `rest_path`, so nothing trains on them.

    The probe keeps one record per (image, question asked step by step); its gpt turn is the truth.
    """
    records = list(_records(source))
    groups = sorted({str(r.get("image") or r.get("id")) for r in records})
    if n_images >= len(groups):
        raise SicogError(f"monitor.probe_heldout: {n_images} images held out of the {len(groups)} of {source} "
                         "leave no warm-up annotations; hold out fewer")
    held = set(random.Random(f"{seed}:probe_heldout").sample(groups, n_images))
    rest = [r for r in records if str(r.get("image") or r.get("id")) not in held]
    probe, seen = [], set()
    for rec in records:
        if str(rec.get("image") or rec.get("id")) in held:
            key = (rec.get("image"), to_cot_question(strip_image_token(first_user_text(rec))))
            if key not in seen:
                seen.add(key)
                probe.append(rec)
    write_jsonl(rest_path, rest)
    write_jsonl(probe_path, probe)
    return {"images": n_images, "probe_records": len(probe), "annotations_left": len(rest)}
