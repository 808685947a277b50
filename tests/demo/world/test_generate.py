"""`sicog world` / generate_world: determinism, disjoint splits, valid files, benchmark truth, CLI."""

import base64
import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sicog.cli import build_parser, main
from sicog.data import formats as F
from sicog.data.records import read_records
from sicog.demo.world.benchmark import BENCHMARK_COLUMNS
from sicog.demo.world.generate import EXTRA_FILES, SPLITS, WorldSizes, generate_world
from sicog.demo.world.render import render_scene
from sicog.demo.world.scenes import (
    OCCLUSION_MAX,
    PALETTE,
    Scene,
    SceneConfig,
    _same_colour_contacts,
    object_mask,
    scene_for,
)

SMALL = WorldSizes(n_align=6, n_annotated=4, n_reasoning=4, n_instructions=6, n_unlabeled_images=4,
                   n_unlabeled_questions=4, n_benchmark=10, mcq_fraction=0.5)


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    manifest = generate_world(out, seed=5, sizes=SMALL, progress=False)
    return out, manifest


def test_same_seed_gives_byte_identical_files(world, tmp_path):
    out, _ = world
    generate_world(tmp_path / "again", seed=5, sizes=SMALL, progress=False, workers=2)  # 2 processes, 1 chunk each
    assert _hashes(out) == _hashes(tmp_path / "again")
    generate_world(tmp_path / "other", seed=6, sizes=SMALL, progress=False)
    other = _hashes(tmp_path / "other")
    assert other["benchmark.tsv"] != _hashes(out)["benchmark.tsv"]


def test_manifest_names_every_file(world):
    out, manifest = world
    for key in (*SPLITS, *EXTRA_FILES):
        assert (out / manifest[key]).is_file(), key
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["n_records"]["annotated_captions"] == 2 * SMALL.n_annotated


def test_splits_are_disjoint_and_records_valid(world):
    out, manifest = world
    scenes = [json.loads(line) for line in (out / manifest["scenes"]).read_text().splitlines()]
    by_split = {}
    for s in scenes:
        by_split.setdefault(s["split"], set()).add(hashlib.sha256((out / s["image"]).read_bytes()).hexdigest())
    assert len(by_split) == 7
    all_hashes = [h for hs in by_split.values() for h in hs]
    assert len(all_hashes) == len(set(all_hashes)) == len(scenes)
    image_split = {s["image"]: s["split"] for s in scenes}
    for key, (split, name) in SPLITS.items():
        if key == "benchmark":
            continue
        recs = read_records(out / name, require_answer=not key.startswith("unlabeled"))
        assert recs, key
        for r in recs:
            assert image_split[r.record["image"]] == split
            assert r.record["conversations"][0]["value"].startswith(F.IMAGE_TOKEN + "\n")
        if key == "unlabeled_images":
            assert all(r.record["conversations"][0]["value"] == F.with_image_token(F.COD_PROMPT) for r in recs)
    ids = [json.loads(line)["id"] for key, (_s, name) in SPLITS.items() if key != "benchmark"
           for line in (out / name).read_text().splitlines()]
    assert len(ids) == len(set(ids))


def test_annotated_records_round_trip(world):
    out, manifest = world
    recs = {r.record["id"]: r.record for r in read_records(out / manifest["annotated_captions"])}
    for rid, rec in recs.items():
        if rid.endswith("-direct"):
            cod = recs[rid[: -len("-direct")]]["conversations"][1]["value"]
            assert F.extract_cod_description(cod) == rec["conversations"][1]["value"]
            assert rec["conversations"][0]["value"] == F.with_image_token(F.CAPTION_PROMPT)
        else:
            assert F.parse_cod(rec["conversations"][1]["value"]) is not None
    truth = {t["id"]: t for t in map(json.loads, (out / manifest["questions"]).read_text().splitlines())}
    for r in read_records(out / manifest["annotated_reasoning"]):
        rid, (human, gpt) = r.record["id"], r.record["conversations"]
        t = truth[rid.rsplit("-", 1)[0]]
        expected = t["answer_letter"] or t["answer"]
        if rid.endswith("-cot"):
            assert human["value"].endswith(F.STEP_BY_STEP_INSTRUCTION)
            assert F.parse_cot(gpt["value"]) is not None
            assert F.extract_final_answer(gpt["value"]) == expected
        else:
            assert gpt["value"] == expected


def test_benchmark_tsv_points_at_the_truth(world):
    out, manifest = world
    with open(out / manifest["benchmark"], newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert tuple(rows[0]) == BENCHMARK_COLUMNS
    assert len(rows) == SMALL.n_benchmark * SMALL.benchmark_questions_per_image
    truth = [t for t in map(json.loads, (out / manifest["questions"]).read_text().splitlines())
             if t["split"] == "bench"]
    scenes = {s["id"]: s for s in map(json.loads, (out / manifest["benchmark_captions"]).read_text().splitlines())}
    assert len(scenes) == SMALL.n_benchmark
    for i, (row, t) in enumerate(zip(rows, truth)):
        assert row["index"] == str(i)
        assert row[row["answer"]] == t["answer"] and len({row[x] for x in "ABCD"}) == 4
        png = base64.b64decode(row["image"])
        assert png == (out / scenes[row["image_id"]]["image"]).read_bytes()
        assert Image.open(io.BytesIO(png)).size == (64, 64)
    assert {r["category"] for r in rows} == {"count", "attribute", "spatial", "comparison", "existence"}


def test_cli_help_explains_every_flag(capsys):
    parser = build_parser("world")
    sub = next(a for a in parser._actions if a.dest == "command").choices["world"]
    for action in sub._actions:
        assert action.help and action.help.strip(), action.option_strings
    with pytest.raises(SystemExit):
        main(["world", "--help"])
    text = capsys.readouterr().out
    for flag in ("--out", "--seed", "--image-size", "--n-align", "--n-annotated", "--n-reasoning",
                 "--n-instructions", "--n-unlabeled-images", "--n-unlabeled-questions", "--n-benchmark"):
        assert flag in text


def test_cli_writes_manifest(tmp_path, capsys):
    out = tmp_path / "w"
    args = ["world", "--out", str(out), "--seed", "1", "--n-align", "3", "--n-annotated", "2", "--n-reasoning", "2",
            "--n-instructions", "2", "--n-unlabeled-images", "2", "--n-unlabeled-questions", "2",
            "--n-benchmark", "3", "--image-size", "48", "--no-progress"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(SPLITS) | set(EXTRA_FILES) <= set(manifest)
    assert manifest["image_size"] == 48
    assert main(args) == 0  # a complete world with the same settings is reused
    assert main([*args[:4], "2", *args[5:]]) == 2  # other settings without --overwrite: a clear error
    assert "--overwrite" in capsys.readouterr().err
    assert main(["world", "--out", str(tmp_path / "x"), "--max-objects", "9"]) == 2
    assert main(["world", "--out", str(tmp_path / "y"), "--question-subtypes", "colour", "--question-kinds", "count"]) == 2
    assert "--question-subtypes" in capsys.readouterr().err
    only = tmp_path / "c"
    assert main(["world", "--out", str(only), *args[3:], "--question-kinds", "count", "--question-subtypes", "count_all"]) == 0
    manifest = json.loads((only / "manifest.json").read_text())
    assert manifest["scene_config"]["question_subtypes"] == ["count_all"]
    assert {json.loads(line)["subtype"] for line in (only / "questions.jsonl").read_text().splitlines()} <= {"count_all"}


@pytest.mark.parametrize("size", [48, 64, 128])
def test_rendered_colours_stay_unambiguous(size):
    cfg = SceneConfig(image_size=size)
    for i in range(30):
        scene = scene_for(11, "render", i, cfg, f"r-{i}")
        img = render_scene(scene, cfg.colour_jitter, cfg.noise_sd)
        assert img.size == (size, size)
        arr = np.asarray(img, dtype=float)
        for o in scene.objects:
            assert o.visible_fraction >= 1 - OCCLUSION_MAX
            if o.occluded:
                continue
            x, y = (int(round(v)) for v in o.center)
            pix = arr[y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(0)
            nearest = min(PALETTE, key=lambda c: np.sum((np.array(PALETTE[c]) - pix) ** 2))
            assert nearest == o.colour, (scene.id, o)


def test_scene_graph_round_trips_and_has_occlusion():
    cfg = SceneConfig()
    scenes = [scene_for(3, "graph", i, cfg, f"g-{i}") for i in range(150)]
    for s in scenes:
        d = json.loads(json.dumps(s.to_dict()))
        assert Scene.from_dict(d) == s
        cells = [o.cell for o in s.objects]
        assert len(cells) == len(set(cells)) and 1 <= len(cells) <= 6
        # shapes of one colour never touch: they would merge into one blob
        assert not _same_colour_contacts(s.objects, [object_mask(o, s.image_size) for o in s.objects])
    assert any(o.occluded for s in scenes for o in s.objects)
    assert any(s.specks for s in scenes) and any(s.border for s in scenes)


def test_oracle_files_answer_the_unlabeled_inputs(world):
    out, manifest = world
    unl_img = {r.record["id"]: r.record for r in read_records(out / manifest["unlabeled_images"], require_answer=False)}
    oracle = {r.record["id"]: r.record for r in read_records(out / manifest["oracle_captions"])}
    assert set(oracle) == set(unl_img)
    assert all(F.parse_cod(r["conversations"][1]["value"]) for r in oracle.values())
    unl_q = {r.record["id"]: r.record for r in read_records(out / manifest["unlabeled_questions"], require_answer=False)}
    oracle = {r.record["id"]: r.record for r in read_records(out / manifest["oracle_reasoning"])}
    assert set(oracle) == set(unl_q)
    truth = {t["id"]: t for t in map(json.loads, (out / manifest["questions"]).read_text().splitlines())}
    for rid, rec in oracle.items():
        asked = unl_q[rid]["conversations"][0]["value"]
        assert rec["conversations"][0]["value"] == F.to_cot_question(asked)
        expected = truth[rid]["answer_letter"] or truth[rid]["answer"]
        assert F.extract_final_answer(rec["conversations"][1]["value"]) == expected
