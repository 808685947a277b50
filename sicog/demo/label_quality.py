"""How good are the stage-1.5 labels? Scored against the synthetic world's ground truth.

For captions every label is scored like a benchmark caption (`sicog.demo.scoring.score_caption`
on its Step 5 paragraph): object precision (1 - hallucination rate) and object recall. For
reasoning the final answer ("The answer is X.") is compared with the question's truth.

Rows compare, on the same items, the teacher's greedy output, a random candidate, the curated
(most self-consistent) candidate and the ground truth (and the labels of the arms drawn from the
candidates or from noised truth: uncurated, uncurated_valid, oracle_noised): do curated labels beat what the teacher
would have said anyway? (Self-training that only re-teaches the teacher's own errors cannot help.)
"""

from __future__ import annotations

from pathlib import Path

from sicog.data.bundle import bundle_files
from sicog.data.formats import extract_cot_answer
from sicog.data.records import iter_json_objects
from sicog.demo.scoring import score_caption, summarize_captions
from sicog.eval.answers import answer_matches
from sicog.pipeline.data_steps import uncurated_records


def _jsonl(path: str | Path) -> list[dict]:
    return [rec for _w, rec in iter_json_objects(str(path))] if Path(path).is_file() else []


def _label_of(rec: dict) -> str:
    """The label text of a training record (gpt turn) or of a candidate record (first candidate)."""
    if "conversations" in rec:
        return next((t["value"] for t in rec["conversations"] if t.get("from") == "gpt"), "")
    cands = rec.get("candidates") or [""]
    return cands[0] or ""


def caption_quality(pairs: list[tuple[str, str]], scenes: dict[str, dict]) -> dict:
    """{items, object_precision, object_recall} of (id, text) labels against scene graphs."""
    scores = [score_caption(text, scenes[i]) for i, text in pairs if i in scenes]
    if not scores:
        return {"items": 0, "object_precision": None, "object_recall": None}
    s = summarize_captions(scores)
    return {"items": len(scores), "object_precision": 1.0 - s["hallucination_rate"],
            "object_recall": s["object_recall"]}


def _answer_ok(text: str, truth: dict) -> bool:
    return answer_matches(extract_cot_answer(text or ""), truth.get("answer_letter") or str(truth["answer"]),
                          truth.get("options"))


def reasoning_quality(pairs: list[tuple[str, str]], truth: dict[str, dict]) -> dict:
    """{items, answer_accuracy} of (id, CoT text) labels against the questions' truth."""
    ok = [_answer_ok(t, truth[i]) for i, t in pairs if i in truth]
    return {"items": len(ok), "answer_accuracy": sum(ok) / len(ok) if ok else None}


def label_quality(planner, world_dir: str) -> dict:
    """Rows {round, task, labels, items, object_precision, object_recall | answer_accuracy}."""
    files = bundle_files(world_dir)
    scenes = {r["id"]: r["scene"] for r in _jsonl(files["scenes"]) if r["split"] == "ui"}
    truth = {r["id"]: r for r in _jsonl(files["questions"]) if r["split"] == "uq"}
    rows = []
    for (k, task), cand_path in sorted(planner.candidates.items()):
        cands = _jsonl(cand_path)
        curated = {r["id"]: _label_of(r) for r in _jsonl(planner.curated.get((k, task), ""))}
        sets: dict[str, list[tuple[str, str]]] = {
            "every candidate": [(r["id"], t) for r in cands for t in r.get("candidates", [])]}
        if (k, task) in planner.greedy:
            sets["greedy"] = [(r["id"], _label_of(r)) for r in _jsonl(planner.greedy[(k, task)])]
        # one seeded random candidate of every item (the uncurated arm's draw), whatever items that arm kept
        sets["random candidate"] = [(r["id"], _label_of(r))
                                    for r in uncurated_records(cand_path, planner.round_seed(k))]
        # the labels of the arms drawn from candidates or noised truth (uncurated, uncurated_valid, oracle_noised)
        arm_sets = {}
        for step in planner.steps:
            if step.role in ("uncurated", "noised") and step.round == k and step.task == task:
                name = "uncurated arm" if step.outputs["records"] == planner.uncurated.get((k, task)) \
                    else f"{step.name.split('/')[-1]} ({step.arm} arm)"
                arm_sets[name] = [(r["id"], _label_of(r)) for r in _jsonl(step.outputs["records"])]
        sets.update(arm_sets)
        if (k, task) in planner.oracle:
            sets["ground truth"] = [(r["id"], _label_of(r)) for r in _jsonl(planner.oracle[(k, task)])]
        if curated:
            for name in [n for n in sets if n != "ground truth" and n not in arm_sets]:
                sets[f"{name}, kept items"] = [(i, t) for i, t in sets[name] if i in curated]
            sets["curated, kept items"] = list(curated.items())
        for name, pairs in sets.items():
            scored = caption_quality(pairs, scenes) if task == "captions" else reasoning_quality(pairs, truth)
            rows.append({"round": k, "task": task, "labels": name, **scored})
    return {"rows": rows}


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def label_quality_markdown(quality: dict) -> list[str]:
    """The label-quality table as report.md lines."""
    lines = ["", "## Quality of the stage-1.5 labels against the ground truth", "",
             "| labels | task | items | object precision % | object recall % | answer accuracy % |",
             "|---|---|---|---|---|---|"]
    for row in quality.get("rows", []):
        lines.append(f"| {row['labels']} | {row['task']} | {row.get('items', '–')} "
                     f"| {_pct(row.get('object_precision'))} | {_pct(row.get('object_recall'))} "
                     f"| {_pct(row.get('answer_accuracy'))} |")
    return lines
