"""`sicog convert` for the recipe's public data: layouts in, sicog's LLaVA JSONL out, skips counted."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from sicog.cli import main


def _write(path: Path, recs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recs))  # the public files are .json lists
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _summary(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".summary.json").read_text())


def _images(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(folder / name)


def test_llava_pretrain_gives_alignment_records_and_an_unlabeled_pool(tmp_path):
    folder = tmp_path / "images"
    _images(folder, "00000/1.jpg", "00000/2.jpg")
    src = _write(tmp_path / "in" / "blip_laion_cc_sbu_558k.json", [
        {"id": "1", "image": "00000/1.jpg", "conversations": [
            {"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"},
            {"from": "gpt", "value": "a cat on a mat"}]},
        {"id": "2", "image": "00000/2.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWrite a terse caption."}, {"from": "gpt", "value": "a dog"}]},
        {"id": "3", "image": "00000/3.jpg", "conversations": [
            {"from": "human", "value": "<image>\nCaption?"}, {"from": "gpt", "value": "gone"}]},
    ])
    align, pool = tmp_path / "out" / "align.jsonl", tmp_path / "out" / "pool.jsonl"
    base = ["convert", "llava-pretrain", "--data", str(src), "--image-folder", str(folder)]
    assert main(base + ["--out", str(align)]) == 0
    assert main(base + ["--out", str(pool), "--as", "pool"]) == 0
    assert _read(align)[0]["conversations"] == [
        {"from": "human", "value": "<image>\nRender a clear and concise summary of the photo."},
        {"from": "gpt", "value": "a cat on a mat"}]
    assert [r["conversations"] for r in _read(pool)] == [
        [{"from": "human", "value": "<image>\nRender a clear and concise summary of the photo."}],
        [{"from": "human", "value": "<image>\nWrite a terse caption."}]]
    assert _summary(align)["skipped"] == {"missing-image": 1}
    assert _summary(align)["skipped_examples"]["missing-image"][0].startswith(f"{src}:3:")


def test_allava_caption_gives_annotation_inputs(tmp_path):
    src = _write(tmp_path / "in" / "ALLaVA-Caption-VFLAN-4V.json", [
        {"id": "v1", "image": "vflan/1.jpg", "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image."}, {"from": "gpt", "value": "A chart."}]},
        {"id": "v2", "image": "vflan/2.jpg", "caption": "A map.", "conversations": [
            {"from": "human", "value": "What is shown?"}]},
        {"id": "v3", "image": "vflan/3.jpg", "conversations": [{"from": "human", "value": "<image>\nHi"}]},
        {"id": "v4", "image": "vflan/4.jpg", "conversations": [
            {"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "over the limit"}]},
    ])
    out = tmp_path / "out" / "allava.jsonl"
    assert main(["convert", "allava-caption", "--data", str(src), "--out", str(out), "--limit", "2"]) == 0
    assert _read(out)[1] == {"id": "v2", "image": "vflan/2.jpg", "conversations": [
        {"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "A map."}]}
    assert _summary(out)["skipped"] == {"no-caption": 1, "over-limit": 1}


def test_llava_sft_checks_the_mix(tmp_path):
    src = _write(tmp_path / "in" / "llava_v1_5_mix665k.json", [
        {"id": "a", "image": "coco/1.jpg", "conversations": [
            {"from": "human", "value": "What is it?\n<image>"}, {"from": "gpt", "value": "A cat."},
            {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Black."}]},
        {"id": "t", "model": "", "conversations": [
            {"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi!"}]},
        {"id": "b", "image": "coco/2.jpg", "conversations": [{"from": "human", "value": "<image>\nQ"}]},
        {"id": "c", "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]},
        {"id": "a", "image": "coco/1.jpg", "conversations": [
            {"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]},
    ])
    out = tmp_path / "out" / "sft.jsonl"
    assert main(["convert", "llava-sft", "--data", str(src), "--out", str(out)]) == 0
    recs = _read(out)
    assert [r["id"] for r in recs] == ["a", "t", "a#2"]  # a repeated id: kept, made unique
    assert recs[0]["conversations"][0]["value"] == "<image>\nWhat is it?" and "image" not in recs[1]
    assert _summary(out)["skipped"] == {"bad-record": 1, "placeholder-without-image": 1}
    assert _summary(out)["changed"] == {"placeholder-moved": 1, "id-made-unique": 1}
    text = tmp_path / "out" / "text.jsonl"
    assert main(["convert", "llava-sft", "--data", str(src), "--out", str(text), "--keep", "text"]) == 0
    assert [r["id"] for r in _read(text)] == ["t"] and _summary(text)["skipped"]["other-kind"] == 3


def test_questions_take_the_first_question_or_every_one_with_its_context(tmp_path):
    src = _write(tmp_path / "in" / "qa.json", [
        {"id": "q", "image": "x.jpg", "conversations": [
            {"from": "human", "value": "<image>\nHow many?\nAnswer the question using a single word or phrase."},
            {"from": "gpt", "value": "3"}, {"from": "human", "value": "Why?"}, {"from": "gpt", "value": "Because"}]},
    ])
    out = tmp_path / "out" / "pool.jsonl"
    assert main(["convert", "questions", "--data", str(src), "--out", str(out)]) == 0
    assert _read(out) == [  # the authors' pool: the first question of a record, answers stripped
        {"id": "q", "image": "x.jpg", "conversations": [
            {"from": "human", "value": "<image>\nHow many?\nAnswer the question step-by-step."}]}]
    assert _summary(out)["changed"] == {"later-questions-dropped": 1}
    every = tmp_path / "out" / "every.jsonl"
    assert main(["convert", "questions", "--data", str(src), "--out", str(every), "--turns", "all"]) == 0
    assert _read(every) == [  # a follow-up keeps the turns it follows ("Why?" alone means nothing)
        {"id": "q-q0", "image": "x.jpg", "conversations": [
            {"from": "human", "value": "<image>\nHow many?\nAnswer the question step-by-step."}]},
        {"id": "q-q1", "image": "x.jpg", "conversations": [
            {"from": "human", "value": "<image>\nHow many?\nAnswer the question using a single word or phrase."},
            {"from": "gpt", "value": "3"},
            {"from": "human", "value": "Why?\nAnswer the question step-by-step."}]}]
