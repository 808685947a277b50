"""The plans of the shipped pipeline configs, as comparable data (tests/pipeline/test_arms.py).

A snapshot holds, for each case (a shipped config plus `--set` overrides), every step's name, kind,
round, arm, task, role, inputs, outputs and a digest of its params, with the case's temporary folders replaced by
placeholders, so that a plan made on another machine or in another folder compares equal. The
committed file shipped_plans.json was first written by the planner as it was before the arms table
(issue 28), which had to plan the same steps with the same params; it guards the shipped configs'
plans since.

Rewrite it (only when a plan is meant to change): PYTHONPATH=. python -m tests.pipeline.plan_snapshot
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "configs" / "pipeline"
PRESETS = ROOT / "sicog" / "demo" / "presets"
SNAPSHOT = Path(__file__).resolve().parent / "shipped_plans.json"

#: case name -> (config file, overrides); `real` configs plan against empty files in a scratch folder
CASES = {
    "smoke": (PRESETS / "smoke.yaml", []),
    "smoke_rounds2": (PRESETS / "smoke.yaml", ["rounds=2"]),
    "smoke_uncurated_all": (PRESETS / "smoke.yaml", ["uncurated_items=all", "post_training.method=none"]),
    "smoke_annotations": (PRESETS / "smoke.yaml", ["mixture.include_annotations=true", "mixture.text_only_ratio=0"]),
    "smoke_oracle_head": (PRESETS / "smoke.yaml", ["arms=[base, oracle]", "post_training.method=none",
                                                   "sampling.captions.max_items=5", "sampling.reasoning.max_items=7"]),
    "smoke_uncurated_only": (PRESETS / "smoke.yaml", ["arms=[uncurated]", "post_training.method=none",
                                                      "label_quality=false"]),
    "smoke_keep_fraction": (PRESETS / "smoke.yaml", ["curation.captions.threshold=null", "curation.captions.keep_fraction=0.5"]),
    "tiny": (PRESETS / "tiny.yaml", []),
    "tiny_rounds2": (PRESETS / "tiny.yaml", ["rounds=2", "round_arms=[sicog, oracle]"]),
    "controls": (PRESETS / "controls.yaml", []),
    "mechanism": (PRESETS / "mechanism.yaml", []),
    "qwen2_7b": (PIPELINES / "qwen2_7b.yaml", []),
    "qwen2_7b_uhd": (PIPELINES / "qwen2_7b_uhd.yaml", []),
}

REAL_DIRS = ("models/clip-vit-large-patch14-336", "models/Qwen2-7B-Instruct", "data/images")
REAL_FILES = ("data/llava_pretrain/blip_laion_cc_sbu_558k.json", "data/sicog/cod_captions_35k.jsonl",
              "data/sicog/structured_cot_35k.jsonl", "data/llava_v1_5_mix665k.json",
              "data/sicog/unlabeled_images_118k.jsonl", "data/sicog/unlabeled_questions_64k.jsonl",
              "data/text_only/text.jsonl", "data/eval/MMStar.tsv")
WORLD_KEYS = ("alignment", "annotated_captions", "annotated_reasoning", "instructions", "unlabeled_images",
              "unlabeled_questions", "oracle_captions", "oracle_reasoning", "benchmark_captions", "scenes",
              "questions")


def fake_world(folder: Path) -> Path:
    """A world folder whose manifest names empty files (a plan reads only the manifest)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {k: f"{k}.jsonl" for k in WORLD_KEYS} | {"benchmark": "benchmark.tsv", "seed": 0,
                                                        "scene_config": {"image_size": 64}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for name in manifest.values():
        if isinstance(name, str):
            (folder / name).write_text("")
    return folder


def real_inputs(folder: Path) -> Path:
    """The models and data files the real-scale configs name by default, empty."""
    for name in REAL_DIRS:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for name in REAL_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("")
    return folder


def plan_case(name: str, scratch: Path, extra: list[str] | None = None) -> list[dict]:
    """The normalised plan of case `name`, planned under `scratch` (a fresh folder)."""
    from sicog.pipeline.cli import load_pipeline
    from sicog.pipeline.plan import build_plan

    path, sets = CASES[name]
    sets = ["monitor.enabled=false", *sets]  # the snapshot predates the round monitor (test_monitor.py tests it)
    scratch = scratch.resolve()
    work = scratch / "work"
    cwd = os.getcwd()
    # the stand-ins cache as a user's default (the test run points SICOG_CACHE_DIR at its own folder)
    cache = os.environ.pop("SICOG_CACHE_DIR", None)
    try:
        if path.parent == PRESETS:
            world = fake_world(scratch / "world")
            cfg = load_pipeline(str(path), [f"work_dir={work}", f"data.world={world}", *sets, *(extra or [])])
        else:
            os.chdir(real_inputs(scratch / "inputs"))
            cfg = load_pipeline(str(path), [f"work_dir={work}", *sets, *(extra or [])])
        planner = build_plan(cfg, path.parent)
    finally:
        os.chdir(cwd)
        if cache is not None:
            os.environ["SICOG_CACHE_DIR"] = cache
    return normalise(planner.steps, {str(scratch): "<scratch>", str(ROOT): "<repo>",
                                     str(Path.home()): "<home>"})


def normalise(steps, replacements: dict[str, str]) -> list[dict]:
    rows = []
    for s in steps:
        row = {"name": s.name, "kind": s.kind, "round": s.round, "arm": s.arm, "task": s.task, "role": s.role,
               "inputs": s.inputs, "outputs": s.outputs, "params": s.params, "describe": s.describe}
        text = json.dumps(row, sort_keys=True, default=str)
        for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(old, new)
        row = json.loads(text)
        # the digest stands for the params (the file stays small); a mismatch is found by step name
        row["params_digest"] = hashlib.sha256(json.dumps(row.pop("params"), sort_keys=True).encode()).hexdigest()[:16]
        rows.append(row)
    return rows


def write_snapshot() -> None:
    import tempfile

    out = {}
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            out[name] = plan_case(name, Path(tmp))
    SNAPSHOT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT} ({sum(len(v) for v in out.values())} steps in {len(out)} cases)")


if __name__ == "__main__":
    from sicog.cli import load_plugins

    load_plugins()
    write_snapshot()
