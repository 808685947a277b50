"""Writing a whole synthetic world: images, LLaVA JSONL splits, benchmark, scene graphs, manifest.

Layout under the output folder (all paths in files are relative to it, so `--image-folder DIR`
works)::

    images/<split>/<id>.png     one scene per image; splits never share a scene
    alignment.jsonl             brief captions (stage 1)            split "align"
    annotated_captions.jsonl    CoD + direct-description companions split "cod"
    annotated_reasoning.jsonl   CoT + short-answer companions       split "cot"
    instructions.jsonl          short answers / option letters (SFT) split "sft"
    unlabeled_images.jsonl      image + COD_PROMPT human turn only  split "ui"
    unlabeled_questions.jsonl   image + question human turn only    split "uq"
    oracle_captions.jsonl       the truth's CoD for every unlabeled image (same ids; oracle arm)
    oracle_reasoning.jsonl      the truth's CoT for every unlabeled question (same ids, the prompt
                                `to_cot_question` of the unlabeled one; oracle arm)
    benchmark.tsv               multiple-choice benchmark           split "bench"
    benchmark_captions.jsonl    benchmark images + scene graphs
    scenes.jsonl                {"id", "split", "image", "scene"} for every image
    questions.jsonl             truth of every question: {"id", "image_id", "split", "kind",
                                "subtype", "question", "answer", "options", "answer_letter"}
    manifest.json               written last: the folder is complete when it exists
    .sicog_world_pending.json   while it is written: what this world (and any it replaces) wrote

manifest.json: one key per file above (alignment, annotated_captions, annotated_reasoning,
instructions, unlabeled_images, unlabeled_questions, oracle_captions, oracle_reasoning,
benchmark, benchmark_captions, scenes, questions) -> path relative to the folder; plus
`format_version`, `seed`, `sizes` (WorldSizes), `scene_config` (SceneConfig), `image_size`,
`n_images` (per split), `n_records` (per file key) and `fingerprints` (sha256[:16] per file key).
Questions ids in questions.jsonl are the record ids below (`bench-row-<index>` for the benchmark).

Record ids: `<image id>` / `<image id>-direct` (captions), `<image id>-q<k>-cot` /
`<image id>-q<k>-short` (reasoning), `<image id>-q<k>` (instructions, unlabeled questions).
A share `mcq_fraction` of the questions is laid out as multiple choice (`formats.mcq_prompt`),
answered with the option letter. Same seed and settings -> byte-identical files.

A folder is only ever written as a world: empty or new, a world (manifest.json; one with other
settings needs `overwrite`), or a world being written (the pending marker). Anything else is
refused. A world is replaced file by file: the new files take the same names, and the images
of the earlier world that the new one does not have (known from its manifest's `n_images`) are
removed one by one - a file the user put in the folder is never touched. `OUT.lock` keeps two
writers off one folder (sicog.utils.lock).
"""

from __future__ import annotations

import json
import logging
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from sicog.data import formats
from sicog.demo.world import annotate as A
from sicog.demo.world import questions as Q
from sicog.demo.world.benchmark import benchmark_rows_for_scene, write_benchmark_tsv
from sicog.demo.world.render import png_bytes, render_scene
from sicog.demo.world.scenes import SceneConfig, derive_seed, scene_for
from sicog.utils.io import SicogError, file_fingerprint, write_json, write_jsonl
from sicog.utils.lock import check_writable, output_lock

log = logging.getLogger(__name__)
WORLD_FORMAT_VERSION = 1
SPLITS = {  # manifest key -> (split name, file name)
    "alignment": ("align", "alignment.jsonl"),
    "annotated_captions": ("cod", "annotated_captions.jsonl"),
    "annotated_reasoning": ("cot", "annotated_reasoning.jsonl"),
    "instructions": ("sft", "instructions.jsonl"),
    "unlabeled_images": ("ui", "unlabeled_images.jsonl"),
    "unlabeled_questions": ("uq", "unlabeled_questions.jsonl"),
    "benchmark": ("bench", "benchmark.tsv"),
}
EXTRA_FILES = {"oracle_captions": "oracle_captions.jsonl", "oracle_reasoning": "oracle_reasoning.jsonl",
               "benchmark_captions": "benchmark_captions.jsonl", "scenes": "scenes.jsonl",
               "questions": "questions.jsonl"}


@dataclass(frozen=True)
class WorldSizes:
    """How many images each split gets (and questions per image where a split has questions)."""

    n_align: int = 300
    n_annotated: int = 60
    n_reasoning: int = 60
    n_instructions: int = 200
    n_unlabeled_images: int = 150
    n_unlabeled_questions: int = 150
    n_benchmark: int = 60
    reasoning_questions_per_image: int = 2
    instruction_questions_per_image: int = 2
    unlabeled_questions_per_image: int = 1
    benchmark_questions_per_image: int = 2
    mcq_fraction: float = 0.3

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name == "mcq_fraction":
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"mcq_fraction must be within 0..1, got {value}")
            elif value < 0 or (name.endswith("per_image") and value < 1):
                raise ValueError(f"{name} must be {'>= 1' if name.endswith('per_image') else '>= 0'}, got {value}")


def _human(text: str) -> dict:
    return {"from": "human", "value": formats.with_image_token(text)}


def _gpt(text: str) -> dict:
    return {"from": "gpt", "value": text}


def _question_records(split, image_id, image, scene, rng, k, cfg, sizes, mode, truth, oracle=None):
    """Records of one image's questions; mode: reasoning | instructions | unlabeled (whose
    ground-truth CoT records go to `oracle`)."""
    out = []
    for qi, q in enumerate(Q.make_questions(scene, rng, k, cfg)):
        rid = f"{image_id}-q{qi}"
        mcq = q.options is not None and rng.random() < sizes.mcq_fraction
        letters, letter = Q.mcq_layout(q, rng) if mcq else (None, None)
        short_q = formats.mcq_prompt(q.text, letters, style="direct") if mcq else Q.short_prompt(q)
        short_a = letter if mcq else q.answer
        truth.append({"id": rid, "image_id": image_id, "split": split, "kind": q.kind, "subtype": q.subtype,
                      "question": q.text, "answer": q.answer, "options": letters, "answer_letter": letter})
        if mode == "reasoning":
            cot = Q.cot_answer(q, letters, letter) if mcq else Q.cot_answer(q)
            out.append({"id": f"{rid}-cot", "image": image,
                        "conversations": [_human(formats.to_cot_question(short_q)), _gpt(cot)]})
            out.append({"id": f"{rid}-short", "image": image,
                        "conversations": [_human(short_q), _gpt(short_a)]})
        elif mode == "instructions":
            out.append({"id": rid, "image": image, "conversations": [_human(short_q), _gpt(short_a)]})
        else:
            out.append({"id": rid, "image": image, "conversations": [_human(short_q)]})
            cot = Q.cot_answer(q, letters, letter) if mcq else Q.cot_answer(q)
            oracle.append({"id": rid, "image": image,
                           "conversations": [_human(formats.to_cot_question(short_q)), _gpt(cot)]})
    return out


def _world_item(out: Path, seed: int, split: str, i: int, cfg: SceneConfig, sizes: WorldSizes) -> dict:
    """Everything image `i` of `split` adds to the world's files (its PNG is written here)."""
    image_id = f"{split}-{i:06d}"
    image = f"images/{split}/{image_id}.png"
    scene = scene_for(seed, split, i, cfg, image_id)
    png = png_bytes(render_scene(scene, cfg.colour_jitter, cfg.noise_sd))
    _write_bytes(out / image, png)
    graph = scene.to_dict()
    item = {"scene": {"id": image_id, "split": split, "image": image, "scene": graph}, "records": [],
            "truth": [], "oracle_captions": [], "oracle_reasoning": [], "bench_rows": [], "bench_captions": []}
    rng = random.Random(derive_seed("sicog-world-text", seed, split, i))
    recs, truth = item["records"], item["truth"]
    if split == "align":
        prompt = rng.choice(formats.BRIEF_CAPTION_PROMPTS)
        recs.append({"id": image_id, "image": image, "conversations": [_human(prompt), _gpt(A.brief_caption(scene, rng))]})
    elif split == "cod":
        steps = A.cod_steps(scene, rng)
        recs.append({"id": image_id, "image": image,
                     "conversations": [_human(formats.COD_PROMPT), _gpt(formats.format_cod(steps))]})
        recs.append({"id": f"{image_id}-direct", "image": image,
                     "conversations": [_human(formats.CAPTION_PROMPT), _gpt(steps[-1])]})
    elif split == "cot":
        recs += _question_records(split, image_id, image, scene, rng, sizes.reasoning_questions_per_image,
                                  cfg, sizes, "reasoning", truth)
    elif split == "sft":
        recs += _question_records(split, image_id, image, scene, rng, sizes.instruction_questions_per_image,
                                  cfg, sizes, "instructions", truth)
    elif split == "ui":
        recs.append({"id": image_id, "image": image, "conversations": [_human(formats.COD_PROMPT)]})
        item["oracle_captions"].append({"id": image_id, "image": image, "conversations": [
            _human(formats.COD_PROMPT), _gpt(A.cod_text(scene, rng))]})
    elif split == "uq":
        recs += _question_records(split, image_id, image, scene, rng, sizes.unlabeled_questions_per_image,
                                  cfg, sizes, "unlabeled", truth, item["oracle_reasoning"])
    else:  # bench: kinds cycle over rows so categories stay balanced
        k = sizes.benchmark_questions_per_image
        item["bench_rows"] += benchmark_rows_for_scene(scene, png, rng, k, (i * k) % len(cfg.question_kinds), cfg)
        item["bench_captions"].append({"id": image_id, "image": image, "scene": graph})
    return item


def _world_items(chunk: tuple) -> list[dict]:
    """The items of images lo..hi-1 of one split (a worker's share)."""
    out, seed, split, lo, hi, cfg, sizes = chunk
    return [_world_item(out, seed, split, i, cfg, sizes) for i in range(lo, hi)]


def _settings(seed: int, sizes: WorldSizes, cfg: SceneConfig) -> dict:
    return {"format_version": WORLD_FORMAT_VERSION, "seed": seed, "sizes": asdict(sizes),
            "scene_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}}


PENDING = ".sicog_world_pending.json"
ITEMS_PER_CHUNK = 100  # images per task of a worker process


def _image_paths(n_images: dict) -> list[str]:
    """The image files of a world with `n_images` per split (known splits and counts only)."""
    return [f"images/{split}/{split}-{i:06d}.png" for split, n in n_images.items()
            if split in {v[0] for v in SPLITS.values()} and isinstance(n, int) for i in range(n)]


def _earlier_world(out: Path, settings: dict, overwrite: bool) -> dict | None:
    """What is in `out` already: None (nothing: empty or new), the manifest of a complete world with
    the same `settings` (reuse it: {"reuse": manifest}), or the `n_images` an earlier world wrote."""
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or "format_version" not in old:
            raise SicogError(f"{manifest_path} is not the manifest of a world; choose another --out")
        if {k: old.get(k) for k in settings} == settings:
            return {"reuse": old}
        if not overwrite:
            raise SicogError(f"{out} already holds a world with other settings "
                             f"({manifest_path}); pass --overwrite or choose another --out")
        return {"n_images": old.get("n_images") or {}}
    if (out / PENDING).exists():  # an interrupted world: continued (file by file) with any settings
        try:
            return {"n_images": json.loads((out / PENDING).read_text(encoding="utf-8"))["n_images"]}
        except (OSError, ValueError, KeyError, TypeError):
            raise SicogError(f"{out / PENDING}: unreadable; remove the folder {out} to write a world there") from None
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SicogError(f"--out {out} is not empty and holds no world (no manifest.json); a world is written "
                         "only into an empty or new folder, or over a world")
    return None


def generate_world(out_dir, seed: int = 0, sizes: WorldSizes | None = None, cfg: SceneConfig | None = None,
                   overwrite: bool = False, progress: bool | None = None, workers: int = 1) -> dict:
    """Write a world under `out_dir` and return its manifest (also `out_dir/manifest.json`).

    A complete world with the same settings already there is reused as it is; one with other
    settings is an error unless `overwrite` (then it is replaced file by file, see the module
    docstring). `progress` None shows a bar for large worlds only. `workers` processes render the
    images (the files do not depend on it).
    """
    out = Path(out_dir)
    check_writable(out, "--out", "dir")
    with output_lock(out):
        return _generate(out, seed, sizes or WorldSizes(), cfg or SceneConfig(), overwrite, progress, workers)


def _generate(out: Path, seed: int, sizes: WorldSizes, cfg: SceneConfig, overwrite: bool,
              progress: bool | None, workers: int) -> dict:
    settings = _settings(seed, sizes, cfg)
    earlier = _earlier_world(out, settings, overwrite)
    if earlier and "reuse" in earlier:
        log.info("world in %s is complete with these settings; reusing it", out)
        return earlier["reuse"]
    counts = {"align": sizes.n_align, "cod": sizes.n_annotated, "cot": sizes.n_reasoning,
              "sft": sizes.n_instructions, "ui": sizes.n_unlabeled_images,
              "uq": sizes.n_unlabeled_questions, "bench": sizes.n_benchmark}
    total = sum(counts.values())
    old = (earlier or {}).get("n_images")
    old = {k: v for k, v in old.items() if isinstance(v, int)} if isinstance(old, dict) else {}
    written = {k: max(counts.get(k, 0), old.get(k, 0)) for k in {**counts, **old}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # from here on the folder is incomplete
    write_json(out / PENDING, {"n_images": written})  # every image this world and the one it replaces wrote
    show = total >= 500 if progress is None else progress
    records: dict[str, list] = {s: [] for s in counts}
    scenes_out, truth, bench_rows, bench_captions = [], [], [], []
    oracle_captions, oracle_reasoning = [], []
    for split in counts:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
    # every image depends only on (seed, split, index): chunks go to worker processes, results come
    # back in order, so the files are the same for any number of workers
    chunks = [(out, seed, split, lo, min(lo + ITEMS_PER_CHUNK, n), cfg, sizes)
              for split, n in counts.items() for lo in range(0, n, ITEMS_PER_CHUNK)]
    bar = tqdm(total=total, desc="sicog world", unit="img", disable=not show)
    pool = ProcessPoolExecutor(workers) if workers > 1 and len(chunks) > 1 else None
    try:
        for items in (pool.map(_world_items, chunks) if pool else map(_world_items, chunks)):
            for item in items:
                scenes_out.append(item["scene"])
                records[item["scene"]["split"]] += item["records"]
                truth += item["truth"]
                oracle_captions += item["oracle_captions"]
                oracle_reasoning += item["oracle_reasoning"]
                bench_rows += item["bench_rows"]
                bench_captions += item["bench_captions"]
            bar.update(len(items))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    bar.close()

    files = {key: name for key, (_split, name) in SPLITS.items()} | EXTRA_FILES
    for key, (split, name) in SPLITS.items():
        if key != "benchmark":
            write_jsonl(out / name, records[split])
    for j, row in enumerate(bench_rows):
        truth.append({"id": f"bench-row-{j}", "image_id": row["image_id"], "split": "bench",
                      "kind": row["category"], "subtype": row["l2-category"], "question": row["question"],
                      "answer": row.pop("_truth"), "options": {x: row[x] for x in Q.LETTERS},
                      "answer_letter": row["answer"]})
    write_benchmark_tsv(out / files["benchmark"], bench_rows)
    write_jsonl(out / files["oracle_captions"], oracle_captions)
    write_jsonl(out / files["oracle_reasoning"], oracle_reasoning)
    write_jsonl(out / files["benchmark_captions"], bench_captions)
    write_jsonl(out / files["scenes"], scenes_out)
    write_jsonl(out / files["questions"], truth)
    n_records = {key: len(records[split]) for key, (split, _n) in SPLITS.items() if key != "benchmark"}
    n_records["benchmark"] = len(bench_rows)
    manifest = {**files, **settings, "image_size": cfg.image_size, "n_images": counts, "n_records": n_records,
                "fingerprints": {key: file_fingerprint(out / name) for key, name in files.items()}}
    keep = set(_image_paths(counts))
    for rel in _image_paths(written):  # the replaced world's images this one does not have
        if rel not in keep:
            (out / rel).unlink(missing_ok=True)
    write_json(out / "manifest.json", manifest)  # last: its presence marks the world complete
    (out / PENDING).unlink(missing_ok=True)
    log.info("wrote a world of %d images to %s", total, out)
    return manifest


def _write_bytes(path: Path, data: bytes) -> None:
    """Write a small file via temp name + rename (no fsync: the manifest, written last, vouches)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
