"""`sicog data check`: the demo world passes; a missing image, a bad line and an over-long record
are each reported with file:line."""

from __future__ import annotations

import json

from PIL import Image

from sicog.cli import main
from sicog.demo.world.generate import SPLITS, WorldSizes, generate_world

SMALL = WorldSizes(n_align=4, n_annotated=3, n_reasoning=3, n_instructions=4, n_unlabeled_images=3,
                   n_unlabeled_questions=3, n_benchmark=4, mcq_fraction=0.5)


def test_the_demo_world_passes(tmp_path, tiny_ckpt, capsys):
    world = tmp_path / "world"
    manifest = generate_world(world, seed=1, sizes=SMALL, progress=False)
    files = [key for key in SPLITS if manifest[key].endswith(".jsonl")]  # the benchmark is a TSV
    assert len(files) == 6
    for key in files:
        unlabeled = ["--unlabeled"] if key.startswith("unlabeled") else []
        assert main(["data", "check", str(world / manifest[key]), "--image-folder", str(world),
                     "--model", str(tiny_ckpt), *unlabeled]) == 0, capsys.readouterr().out
        printed = capsys.readouterr().out
        assert "no problems found" in printed and "token lengths: max" in printed


def test_each_problem_is_reported_with_file_and_line(tmp_path, tiny_ckpt, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "ok.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")

    def rec(i, image, answer="A cat."):
        return json.dumps({"id": f"r{i}", "image": image, "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": answer}]})

    data = tmp_path / "data.jsonl"
    data.write_text("\n".join([
        rec(1, "ok.png"),
        rec(2, "missing.png"),
        "{bad json",
        rec(4, "ok.png", "a cat " * 200),
        rec(5, "broken.png"),
        rec(1, "ok.png"),
        json.dumps({"id": "r7", "conversations": [{"from": "gpt", "value": "no question"}]}),
    ]) + "\n")
    assert main(["data", "check", str(data), "--image-folder", str(folder), "--model", str(tiny_ckpt),
                 "--max-length", "256"]) == 1
    out = capsys.readouterr().out
    assert f"{data}:2: image not found" in out
    assert f"{data}:3: invalid JSON" in out
    assert f"{data}:4: " in out and "over --max-length 256" in out
    assert f"{data}:5: unreadable image" in out
    assert f"{data}:6: key 'id': 'r1' repeats {data}:1" in out
    assert f"{data}:6: same image and conversation as {data}:1" in out
    assert f"{data}:7: key 'conversations': must start with a human turn" in out
    assert "over --max-length: 1" in out
    assert main(["data", "check", str(data), "--image-folder", str(folder), "--limit", "1"]) == 0
    assert "1 record(s) checked (--limit reached)" in capsys.readouterr().out


def test_check_and_training_accept_the_same_records(tmp_path, processor, capsys):
    """The same records through `data check` and through the training dataset: a record is
    reported exactly when training would drop it (an image record without <image> is fine:
    training puts the image first)."""
    from sicog.data.dataset import SupervisedDataset, read_source

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "ok.png")

    def rec(i, first, image="ok.png", later="Why?"):
        r = {"id": f"r{i}", "image": image, "conversations": [
            {"from": "human", "value": first}, {"from": "gpt", "value": "A cat."},
            {"from": "human", "value": later}, {"from": "gpt", "value": "Because."}]}
        return {k: v for k, v in r.items() if v is not None}

    records = [rec(1, "<image>\nWhat is it?"), rec(2, "What is it?"), rec(3, "What is it?\n<image>"),
               rec(4, "<image><image> twice"), rec(5, "<image>\nQ", later="<image> again"),
               rec(6, "<image>\nno image", image=None), rec(7, "plain text", image=None)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    main(["data", "check", str(data), "--image-folder", str(folder), "--no-progress"])
    out = capsys.readouterr().out
    reported = {n for n in range(1, len(records) + 1) if f"{data}:{n}: " in out}
    ds = SupervisedDataset(read_source(str(data)), processor, str(folder), 512, "skip")
    kept = {loc.line for loc in ds.records}
    assert reported == set(range(1, len(records) + 1)) - kept
    assert reported == {4, 5, 6}
