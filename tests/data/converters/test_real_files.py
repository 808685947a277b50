"""`sicog convert` on files shaped like the public releases: repeated ids, changes counted, the
format told from the content, parquet shards with their images, seeded subsets, disjoint sets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sicog.cli import main
from sicog.data import formats


def _write(path: Path, recs: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recs))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _summary(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".summary.json").read_text())


def _qa(rid, q="What is it?", a="A cat.", image="coco/1.jpg", **extra) -> dict:
    rec = {"id": rid, "image": image, "conversations": [
        {"from": "human", "value": f"<image>\n{q}"}, {"from": "gpt", "value": a}], **extra}
    if image is None:
        del rec["image"]
        rec["conversations"][0]["value"] = q
    return rec


# ---------------------------------------------------------------- 1. lossless
def test_a_665k_shaped_file_keeps_every_record_under_a_unique_stable_id(tmp_path, capsys):
    recs = [_qa("000000033471", "What colour is the bus?", "Red."),           # conversation
            _qa("000000033471", "Describe the image in detail.", "A red bus on a street."),  # detail
            _qa("000000033471", "Why is it parked?", "Passengers are boarding."),  # complex reasoning
            _qa("sharegpt-1", "Hello", "Hi ⛵ — ça va?", image=None),          # text-only, unicode
            _qa("000000033471#2", "A record literally named x#2", "yes"),
            {k: v for k, v in _qa("ignored", "No id here", "ok").items() if k != "id"}]
    src = _write(tmp_path / "in" / "llava_v1_5_mix665k.json", recs)
    out = tmp_path / "out" / "sft.jsonl"
    assert main(["convert", "llava-sft", "--data", str(src), "--out", str(out)]) == 0
    got = _read(out)
    assert len(got) == len(recs)  # nothing dropped for its id
    assert [r["id"] for r in got] == ["000000033471", "000000033471#2", "000000033471#3", "sharegpt-1",
                                      "000000033471#2#2", "record-6"]
    assert len({r["id"] for r in got}) == len(got)
    assert sorted(json.dumps(r["conversations"]) for r in got) == sorted(  # every conversation once
        json.dumps([{"from": "human", "value": t["conversations"][0]["value"]}, t["conversations"][1]])
        for t in recs)
    assert _summary(out)["changed"]["id-made-unique"] == 3 and not _summary(out)["skipped"]
    again = tmp_path / "out" / "again.jsonl"
    assert main(["convert", "llava-sft", "--data", str(src), "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()  # stable across runs
    capsys.readouterr()
    main(["data", "check", str(out), "--no-progress"])  # (the images are not there: only ids matter here)
    assert "duplicate ids" not in capsys.readouterr().out


def test_no_record_changes_without_a_count(tmp_path):
    sft = _write(tmp_path / "in" / "sft.json", [
        {"id": "s", "image": "a.jpg", "conversations": [
            {"from": "system", "value": "Be brief."}, {"from": "human", "value": "<image>\nQ1"},
            {"from": "gpt", "value": "A1"}]},
        {"id": "e", "image": "a.jpg", "conversations": [
            {"from": "human", "value": "<image>\nQ1"}, {"from": "gpt", "value": " "},
            {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]},
        {"id": "z", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": ""}]},
    ])
    out = tmp_path / "out" / "sft.jsonl"
    assert main(["convert", "llava-sft", "--data", str(sft), "--out", str(out)]) == 0
    got = {r["id"]: r for r in _read(out)}
    assert got["s"]["conversations"] == [{"from": "human", "value": "<image>\nQ1"}, {"from": "gpt", "value": "A1"}]
    assert got["e"]["conversations"] == [{"from": "human", "value": "<image>\nQ2"}, {"from": "gpt", "value": "A2"}]
    summary = _summary(out)
    assert summary["skipped"] == {"empty-answers": 1}
    assert summary["changed"]["system-turns-dropped"] == 1 and summary["changed"]["empty-answers-dropped"] == 1
    assert summary["changed_examples"]["empty-answers-dropped"][0].startswith(f"{sft}:2: ")

    allava = _write(tmp_path / "in" / "allava.json", [{"id": "m", "image": "a.jpg", "conversations": [
        {"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "A map."},
        {"from": "human", "value": "More?"}, {"from": "gpt", "value": "No."}]}])
    cap = tmp_path / "out" / "allava.jsonl"
    assert main(["convert", "allava-caption", "--data", str(allava), "--out", str(cap)]) == 0
    assert _summary(cap)["changed"] == {"extra-pairs-dropped": 1}

    cot = _write(tmp_path / "in" / "cot.json", [{"id": "t", "conversations": [
        {"from": "human", "value": "2+2?"},
        {"from": "gpt", "value": "<SUMMARY>s</SUMMARY><CAPTION>c</CAPTION><REASONING>r</REASONING>"
                                 "<CONCLUSION>4</CONCLUSION>"}]}, _qa("v", a="<SUMMARY>s</SUMMARY><CAPTION>c"
                                 "</CAPTION><REASONING>r</REASONING><CONCLUSION>4</CONCLUSION>")])
    c, s = tmp_path / "out" / "c.jsonl", tmp_path / "out" / "s.jsonl"
    assert main(["convert", "llava-cot", "--data", str(cot), "--out-cot", str(c), "--out-short", str(s)]) == 0
    assert [r["id"] for r in _read(c)] == ["v"]  # an image-less record is not made "visual" CoT
    assert _summary(c)["skipped"] == {"no-image": 1}


# ---------------------------------------------------------------- 2. formats and streaming
@pytest.mark.parametrize("name, text", [
    ("list.jsonl", "\ufeff  \n" + json.dumps([_qa("a"), _qa("b")], indent=1)),  # a JSON list, BOM, odd suffix
    ("lines.json", "\ufeff" + json.dumps(_qa("a")) + "\n\n" + json.dumps(_qa("b")) + "\n"),  # JSON Lines as .json
    ("upper.JSON", json.dumps([_qa("a"), _qa("b")])),
])
def test_the_format_is_told_from_the_content(tmp_path, name, text, capsys):
    src = tmp_path / "in" / name
    src.parent.mkdir()
    src.write_text(text, encoding="utf-8")
    out = tmp_path / "out" / "sft.jsonl"
    assert main(["convert", "llava-sft", "--data", str(src), "--out", str(out)]) == 0
    assert [r["id"] for r in _read(out)] == ["a", "b"]
    main(["data", "check", str(src), "--no-progress"])
    assert "2 record(s) checked" in capsys.readouterr().out


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 5), colour).save(buf, format="PNG")
    return buf.getvalue()


def _recap_shards(folder: Path) -> list[dict]:
    """Two shards shaped like LLaVA-ReCap-558K's: id, image {bytes, path}, conversations."""
    rows = [{"id": f"00000/{i:09d}", "image": {"bytes": _png((i * 40 % 256, 0, 0)), "path": f"{i:09d}.png"},
             "conversations": [{"from": "human", "value": "<image>\nDescribe the image."},
                               {"from": "gpt", "value": f"A red square number {i}."}]} for i in range(5)]
    rows[4]["image"] = dict(rows[1]["image"])  # the same picture twice: one file
    folder.mkdir(parents=True)
    for k, part in enumerate((rows[:3], rows[3:])):
        pq.write_table(pa.Table.from_pylist(part), folder / f"train-{k:05d}-of-00002.parquet", row_group_size=2)
    return rows


def test_recap_parquet_shards_convert_with_their_images(tmp_path):
    rows = _recap_shards(tmp_path / "recap" / "data")
    images, out = tmp_path / "images" / "recap", tmp_path / "out" / "align.jsonl"
    base = ["convert", "llava-pretrain", "--extract-images-to", str(images)]
    assert main(base + ["--data", str(tmp_path / "recap" / "data"), "--out", str(out)]) == 0
    got = _read(out)
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    for rec, row in zip(got, rows):
        assert (images / rec["image"]).read_bytes() == row["image"]["bytes"]
        assert rec["conversations"] == row["conversations"]
    assert _summary(out)["images"] == {"folder": str(images), "written": 4, "already_there": 1, "rewritten": 0}
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in images.rglob("*.png")}
    # the same shards named by a glob, the images already there: nothing rewritten
    glob_out = tmp_path / "out" / "glob.jsonl"
    assert main(base + ["--data", str(tmp_path / "recap" / "data" / "train-*.parquet"), "--out", str(glob_out)]) == 0
    assert _read(glob_out) == got
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in images.rglob("*.png")} == before
    assert _summary(glob_out)["images"]["written"] == 0
    damaged = images / got[0]["image"]
    damaged.write_bytes(b"half a file")  # what a crash can leave: found and written again
    repaired = tmp_path / "out" / "repaired.jsonl"
    assert main(base + ["--data", str(tmp_path / "recap" / "data"), "--out", str(repaired)]) == 0
    assert damaged.read_bytes() == rows[0]["image"]["bytes"] and _summary(repaired)["images"]["rewritten"] == 1
    # one shard alone, the images inside --image-folder: the records' paths are relative to it
    one = tmp_path / "out" / "one.jsonl"
    assert main(base + ["--data", str(tmp_path / "recap" / "data" / "train-00001-of-00002.parquet"),
                        "--image-folder", str(tmp_path / "images"), "--out", str(one)]) == 0
    assert [r["image"].split("/")[0] for r in _read(one)] == ["recap", "recap"]
    assert main(["data", "check", str(one), "--image-folder", str(tmp_path / "images"), "--no-progress"]) == 0
    # never inside an input folder, and never without a place for the images
    assert main(["convert", "llava-pretrain", "--data", str(tmp_path / "recap" / "data"), "--out",
                 str(tmp_path / "out" / "x.jsonl"), "--extract-images-to", str(tmp_path / "recap" / "data" / "i")]) == 2
    assert main(["convert", "llava-pretrain", "--data", str(tmp_path / "recap" / "data"), "--out",
                 str(tmp_path / "out" / "y.jsonl")]) == 2


def test_a_sampled_parquet_subset_writes_only_its_images(tmp_path):
    _recap_shards(tmp_path / "recap")
    images, out = tmp_path / "images", tmp_path / "out" / "pool.jsonl"
    assert main(["convert", "llava-pretrain", "--as", "pool", "--data", str(tmp_path / "recap"), "--out", str(out),
                 "--extract-images-to", str(images), "--sample", "2", "--seed", "3"]) == 0
    got = _read(out)
    assert len(got) == 2 and sorted(p.relative_to(images).as_posix() for p in images.rglob("*.png")) == sorted(
        {r["image"] for r in got})


# ---------------------------------------------------------------- 3. seeded subsets, disjoint sets
def test_sample_is_a_seeded_random_subset_in_input_order(tmp_path):
    src = _write(tmp_path / "in" / "allava.json", [_qa(f"r{i}", a=f"caption {i}") for i in range(40)])

    def sample(name, seed, *extra):
        out = tmp_path / "out" / name
        assert main(["convert", "allava-caption", "--data", str(src), "--out", str(out), "--sample", "5",
                     "--seed", str(seed), *extra]) == 0
        return [int(r["id"][1:]) for r in _read(out)], _summary(out)

    first, summary = sample("a.jsonl", 1)
    assert len(first) == 5 and first == sorted(first) and summary["skipped"] == {"not-sampled": 35}
    assert sample("b.jsonl", 1)[0] == first
    assert sample("c.jsonl", 2)[0] != first
    assert first != list(range(5))  # not the first records
    assert main(["convert", "allava-caption", "--data", str(src), "--out", str(tmp_path / "d.jsonl"),
                 "--sample", "5", "--limit", "5"]) == 2


def test_a_warm_up_set_and_the_pool_drawn_after_it_are_disjoint(tmp_path, capsys):
    answer = "<SUMMARY>s</SUMMARY><CAPTION>c</CAPTION><REASONING>r</REASONING><CONCLUSION>{}</CONCLUSION>"
    recs = [_qa(f"q{i % 7}", f"Question {i}?\nAnswer the question using a single word or phrase.",
                answer.format(i), image=f"img/{i}.jpg") for i in range(20)]  # ids repeat too
    src = _write(tmp_path / "in" / "train.json", recs)
    cot, short, pool = (tmp_path / "out" / n for n in ("cot.jsonl", "short.jsonl", "pool.jsonl"))
    assert main(["convert", "llava-cot", "--data", str(src), "--out-cot", str(cot), "--out-short", str(short),
                 "--sample", "6", "--seed", "0"]) == 0
    assert main(["convert", "questions", "--data", str(src), "--out", str(pool), "--exclude", str(cot)]) == 0
    assert len(_read(pool)) == 14 and _summary(pool)["skipped"] == {"excluded": 6}
    assert main(["data", "disjoint", str(cot), str(pool)]) == 0
    assert "disjoint: no record shared" in capsys.readouterr().out
    everything = tmp_path / "out" / "all.jsonl"
    assert main(["convert", "questions", "--data", str(src), "--out", str(everything)]) == 0
    assert main(["data", "disjoint", str(cot), str(everything)]) == 1
    assert "shared: 6 record(s)" in capsys.readouterr().out
    assert main(["data", "disjoint", str(cot), str(everything), "--by", "image"]) == 1


# ---------------------------------------------------------------- 6. the smaller items
def test_out_cot_and_out_short_must_differ(tmp_path):
    src = _write(tmp_path / "in" / "cot.json", [_qa("a", a="<SUMMARY>s</SUMMARY><CAPTION>c</CAPTION>"
                                                     "<REASONING>r</REASONING><CONCLUSION>x</CONCLUSION>")])
    same = tmp_path / "out" / "x.jsonl"
    assert main(["convert", "llava-cot", "--data", str(src), "--out-cot", str(same), "--out-short", str(same)]) == 2
    assert not same.exists()


def test_the_conclusion_step_says_the_answer_as_the_short_record_does(tmp_path):
    answer = "<SUMMARY>s</SUMMARY><CAPTION>c</CAPTION><REASONING>r</REASONING><CONCLUSION>{}</CONCLUSION>"
    conclusions = ["B", "Red.", "3.5 meters", "The answer is C."]
    src = _write(tmp_path / "in" / "cot.json", [_qa(f"r{i}", a=answer.format(c)) for i, c in enumerate(conclusions)])
    cot, short = tmp_path / "out" / "c.jsonl", tmp_path / "out" / "s.jsonl"
    assert main(["convert", "llava-cot", "--data", str(src), "--out-cot", str(cot), "--out-short", str(short)]) == 0
    got = [(c["conversations"][1]["value"], s["conversations"][1]["value"]) for c, s in zip(_read(cot), _read(short))]
    assert [s for _, s in got] == conclusions  # the short record keeps the conclusion as written
    for text, _ in got:
        assert formats.parse_cot(text)[3].startswith("The answer is ")  # docs/method.md
    assert [formats.extract_cot_answer(text) for text, _ in got] == ["B", "Red", "3.5 meters", "C"]


def test_images_outside_the_folder_are_accepted_when_asked(tmp_path, capsys):
    folder, elsewhere = tmp_path / "images", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    Image.new("RGB", (4, 4)).save(elsewhere / "x.png")
    src = _write(tmp_path / "in" / "sft.json", [_qa("a", image=str(elsewhere / "x.png"))])
    out = tmp_path / "out" / "sft.jsonl"
    base = ["convert", "llava-sft", "--data", str(src), "--image-folder", str(folder)]
    assert main(base + ["--out", str(out)]) == 2  # every record skipped as image-outside-folder ...
    assert "--allow-images-outside-folder" in capsys.readouterr().err + _skips(out)
    assert main(base + ["--out", str(out), "--allow-images-outside-folder"]) == 0  # ... and the flag it names works
    assert _read(out)[0]["image"] == str(elsewhere / "x.png")
    assert main(["data", "check", str(out), "--image-folder", str(folder), "--no-progress"]) == 1
    assert "--allow-images-outside-folder" in capsys.readouterr().out
    assert main(["data", "check", str(out), "--image-folder", str(folder), "--allow-images-outside-folder",
                 "--no-progress"]) == 0


def _skips(out: Path) -> str:
    return "" if not Path(f"{out}.summary.json").exists() else json.dumps(_summary(out))


@pytest.mark.parametrize("script, env", [
    ("convert_cot.sh", {"DATA_PATH": "in.json", "OUTPUT_DIR": "out"}),
    ("annotate_cod.sh", {"DATA_PATH": "in.json", "IMAGE_FOLDER": "i", "OUTPUT_DIR": "out", "DRY_RUN": "1"}),
])
def test_the_wrappers_use_the_project_venv(tmp_path, script, env):
    import shutil
    import subprocess

    repo = tmp_path / "repo"
    (repo / "training_data_annotation").mkdir(parents=True)
    shutil.copy(Path(__file__).parents[3] / "training_data_annotation" / script, repo / "training_data_annotation")
    (repo / "scripts").mkdir()
    if (Path(__file__).parents[3] / "scripts" / "python.sh").exists():
        shutil.copy(Path(__file__).parents[3] / "scripts" / "python.sh", repo / "scripts")
    venv_python = repo / ".venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/called\n")
    venv_python.chmod(0o755)
    bare = tmp_path / "bin"  # a `python` on PATH that has no sicog
    bare.mkdir()
    (bare / "python").write_text("#!/bin/sh\nexit 97\n")
    (bare / "python").chmod(0o755)
    env = {**env, "PATH": f"{bare}:/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(["bash", str(repo / "training_data_annotation" / script)], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "called").read_text().startswith("-m sicog ")


def test_the_readme_draws_subsets_at_random_and_names_what_it_writes():
    root = Path(__file__).parents[3]
    readme = (root / "README.md").read_text()
    block = readme.split("## Preparing the data", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert "head -n" not in block and "tail -n" not in block  # first records are not a sample
    for source in ("LLaVA-ReCap-558K", "LLaVA-ReCap-118K", "ShareGPT4V"):
        assert source in readme.split("## Preparing the data", 1)[1].split("## ", 1)[0]
    config = (root / "configs" / "pipeline" / "qwen2_7b.yaml").read_text()
    for name in ("unlabeled_questions", "unlabeled_images"):
        default = config.split(f"{name}: ${{")[1].split(":-", 1)[1].split("}", 1)[0]
        assert default in block, f"{name}: the config reads {default}, the README writes no such file"
    assert "164k" not in block + config  # LLaVA-CoT-100k less the 35K warm-up leaves ~64K questions
