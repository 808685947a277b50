"""`sicog convert` and `sicog data check` on hostile records and paths.

- An `image` that is present but no path (a list, a number, "", a stored image with neither bytes
  nor a path) is a counted skip (`bad-image`), never a text-only record; a path with a NUL, a
  symlink loop or a 300-character name is a counted skip naming the cause, never a traceback.
- `data check`: a missing --image-folder or --model folder, an empty file are exit 2 naming it; a
  uhd checkpoint's processor (code shipped in the folder) loads and counts tokens; bad image paths
  are problems at file:line.
- `convert llava-uhd` records its inputs by content: a rewritten weight, tokenizer or config
  file is other settings (refused, redone with --overwrite), not "already converted".
- `--limit N` keeps N records when a repeated id comes first; every output is locked; the temp
  files of a killed run are removed by the next one, even when it has nothing to do.
In-process (sicog.cli.main).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from sicog.cli import main as sicog_main
from sicog.utils.lock import output_lock
from tests.model.uhd.test_convert import _cfg, their_folder  # noqa: F401  (the authors'-layout checkpoint)

from ._harness import snapshot

_TAGGED = "<SUMMARY>s</SUMMARY><CAPTION>c</CAPTION><REASONING>r</REASONING><CONCLUSION>A</CONCLUSION>"


def _record(i: int, image=..., answer: str = _TAGGED) -> dict:
    rec = {"id": f"r{i}", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                            {"from": "gpt", "value": answer}]}
    if image is not ...:
        rec["image"] = image
    return rec


@pytest.fixture
def tmp(tmp_path) -> Path:
    img = tmp_path / "in" / "img"
    img.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(img / "ok.png")
    os.symlink("loop.png", img / "loop.png")
    return tmp_path


def _write(tmp: Path, *records: dict) -> Path:
    path = tmp / "in" / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _main(capsys, *argv) -> tuple[int, str]:
    rc = sicog_main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.err + out.out


CONVERTERS = {
    "llava-cot": lambda tmp: ["--out-cot", tmp / "out" / "c.jsonl", "--out-short", tmp / "out" / "s.jsonl"],
    "questions": lambda tmp: ["--out", tmp / "out" / "c.jsonl"],
}

# name: (the second record's image, the reason it is skipped under, what the example says)
IMAGES = {
    "a_list": (["img/ok.png"], "bad-image", r"expected a non-empty path string, got list"),
    "a_number": (17, "bad-image", r"got int 17"),
    "empty": ("", "bad-image", r"got str \"\""),
    "stored_without_bytes_or_path": ({"bytes": None, "path": None}, "bad-image", r"neither bytes nor a path"),
    "nul_in_path": ("img/a\x00b.png", "bad-image-path", r"NUL byte"),
    "symlink_loop": ("img/loop.png", "bad-image-path", r"a symlink loop"),
    "name_too_long": ("img/" + "x" * 300 + ".png", "bad-image-path", r"a file name too long"),
    "a_folder": ("img", "image-not-a-file", r"is a folder, not a regular file"),
}


@pytest.mark.parametrize("converter", sorted(CONVERTERS))
@pytest.mark.parametrize("case", sorted(IMAGES))
def test_a_bad_image_is_a_counted_skip(tmp, capsys, converter, case):
    image, reason, why = IMAGES[case]
    data = _write(tmp, _record(0, "img/ok.png"), _record(1, image))
    rc, out = _main(capsys, "convert", converter, "--data", data, "--image-folder", tmp / "in",
                    *CONVERTERS[converter](tmp), "--no-progress")
    assert rc == 0 and "Traceback" not in out, out[-2000:]
    written = [json.loads(line) for line in (tmp / "out" / "c.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written] == ["r0"] and all(r.get("image") == "img/ok.png" for r in written)
    summary = json.loads((tmp / "out" / "c.jsonl.summary.json").read_text())
    assert summary["skipped"] == {reason: 1}, summary["skipped"]
    assert re.search(r"data\.jsonl:2: .*" + why, summary["skipped_examples"][reason][0]), summary


def test_limit_keeps_n_records_when_a_repeated_id_comes_first(tmp, capsys):
    caption = [{"id": "r0", "image": "img/ok.png", "conversations": [
        {"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": f"caption {i}"}]} for i in range(2)]
    data = _write(tmp, *caption, _record(1, "img/ok.png", "caption 2"), _record(2, "img/ok.png", "caption 3"))
    rc, out = _main(capsys, "convert", "allava-caption", "--data", data, "--image-folder", tmp / "in",
                    "--out", tmp / "out" / "c.jsonl", "--limit", "2", "--no-progress")
    assert rc == 0, out[-2000:]
    assert [json.loads(x)["id"] for x in (tmp / "out" / "c.jsonl").read_text().splitlines()] == ["r0", "r0#2"]


def test_every_output_of_a_converter_is_locked(tmp, capsys):
    data = _write(tmp, _record(0, "img/ok.png"))
    with output_lock(tmp / "out" / "s.jsonl"):
        rc, out = _main(capsys, "convert", "llava-cot", "--data", data, "--image-folder", tmp / "in",
                        *CONVERTERS["llava-cot"](tmp), "--no-progress")
    assert rc == 2 and re.search(r"s\.jsonl is being written by pid \d+", out), out[-2000:]
    assert not (tmp / "out" / "c.jsonl").exists()


def test_a_killed_converters_temp_files_go_with_the_next_run(tmp, capsys):
    data = _write(tmp, _record(0, "img/ok.png"))
    argv = ["convert", "llava-cot", "--data", data, "--image-folder", tmp / "in", *CONVERTERS["llava-cot"](tmp),
            "--no-progress"]
    assert _main(capsys, *argv)[0] == 0
    left = [tmp / "out" / f".{name}.k1ll3d.tmp" for name in ("c.jsonl", "s.jsonl", "c.jsonl.summary.json")]
    for p in left:  # as a writer killed a moment ago leaves them
        p.write_text("half")
    rc, out = _main(capsys, *argv)  # finished with these settings: nothing to write, the temp files go
    assert rc == 0 and "nothing to do" in out, out[-2000:]
    assert not [p for p in left if p.exists()]


# ----------------------------------------------------------------------------- sicog data check
def _check(tmp: Path, capsys, data: Path, *extra) -> tuple[int, str]:
    return _main(capsys, "data", "check", data, "--image-folder", tmp / "in", "--no-progress", *extra)


# name: (the file's text, extra flags, the error)
CHECK_EXIT_2 = {
    "empty_file": ("", [], r"data\.jsonl: no record in it"),
    "blank_lines_only": ("\n  \n\n", [], r"data\.jsonl: no record in it"),
    "image_folder_missing": (None, ["--image-folder", "{tmp}/nowhere"], r"--image-folder .*nowhere: folder not found"),
    "model_folder_missing": (None, ["--model", "{tmp}/nomodel"], r"--model .*nomodel: checkpoint folder not found"),
    "model_not_a_checkpoint": (None, ["--model", "{tmp}/in/img"], r"--model .*img: cannot load its processor"),
}


@pytest.mark.parametrize("case", sorted(CHECK_EXIT_2))
def test_data_check_exit_2(tmp, capsys, case):
    text, extra, place = CHECK_EXIT_2[case]
    data = _write(tmp, _record(0, "img/ok.png", "A")) if text is None else tmp / "in" / "data.jsonl"
    if text is not None:
        data.write_text(text)
    before = snapshot(tmp)
    rc, out = _check(tmp, capsys, data, *[str(a).replace("{tmp}", str(tmp)) for a in extra])
    assert rc == 2 and "Traceback" not in out, out[-2000:]
    assert re.search(place, out), out[-2000:]
    assert snapshot(tmp) == before


@pytest.mark.parametrize("case", ["nul_in_path", "symlink_loop", "name_too_long", "a_folder"])
def test_data_check_names_a_bad_image_path(tmp, capsys, case):
    image, _, why = IMAGES[case]
    data = _write(tmp, _record(0, "img/ok.png", "A"), _record(1, image, "B"))
    rc, out = _check(tmp, capsys, data)
    assert rc == 1 and "Traceback" not in out, out[-2000:]
    assert re.search(r"images: 1\n  .*data\.jsonl:2: .*" + why, out), out[-2000:]


def test_data_check_counts_tokens_with_a_uhd_checkpoint(tmp, capsys, tiny_uhd_ckpt):
    text_only = {"id": "t", "conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "B"}]}
    data = _write(tmp, _record(0, "img/ok.png", "A"), text_only)
    rc, out = _check(tmp, capsys, data, "--model", tiny_uhd_ckpt)
    assert rc == 0 and "Traceback" not in out, out[-2000:]
    assert re.search(r"token lengths: max \d+; <= 256: 2;", out) and "no problems found" in out, out[-2000:]


# ----------------------------------------------------------------------------- convert llava-uhd

# name: the file of their checkpoint (or of the vision tower) rewritten between two runs
REWRITTEN = {"weights": ("folder", "model.safetensors"), "tokenizer": ("folder", "tokenizer.json"),
             "config": ("folder", "config.json"), "vision_tower_config": ("tower", "config.json")}


@pytest.mark.parametrize("case", sorted(REWRITTEN))
def test_convert_llava_uhd_fingerprints_its_inputs_by_content(their_folder, tmp_path, capsys, case):  # noqa: F811
    import shutil

    from sicog.model.uhd.convert import convert

    theirs = {**their_folder, "folder": tmp_path / "theirs", "tower": tmp_path / "clip"}
    shutil.copytree(their_folder["folder"], theirs["folder"])
    shutil.copytree(their_folder["tower"], theirs["tower"])
    cfg = _cfg(theirs, tmp_path / "ours")
    argv = ["convert", "llava-uhd", "--checkpoint", cfg.checkpoint, "--vision-tower", cfg.vision_tower,
            "--out", cfg.out, "--row-token-id", str(cfg.row_token_id), "--slice-token-id", str(cfg.slice_token_id)]
    convert(cfg)
    meta = (tmp_path / "ours" / "sicog_meta.json").read_bytes()
    where, name = REWRITTEN[case]
    f = theirs[where] / name
    data = f.read_bytes()
    f.write_bytes(data)  # the same path, a new write (a retrained or re-downloaded file)
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    rc, out = _main(capsys, *argv)
    assert rc == 2 and re.search(r"ours was made with other settings \(.*files", out), out[-2000:]
    assert (tmp_path / "ours" / "sicog_meta.json").read_bytes() == meta
    rc, out = _main(capsys, *argv, "--overwrite")
    assert rc == 0, out[-2000:]
    assert (tmp_path / "ours" / "sicog_meta.json").read_bytes() != meta
    assert _main(capsys, *argv)[0] == 0  # now up to date: nothing to do


# ----------------------------------------------------------------------------- hostile lines (probe of issue 26)
_OK = json.dumps(_record(0, "img/ok.png")) + "\n"
# name: (the second line, what the count / the problem says)
LINES = {
    "nested_too_deeply": ("[" * 100000 + "]" * 100000, r"invalid JSON: nested too deeply to read"),
    "lone_surrogate": ('{"id": "r1", "note": "half a pair \\ud800"}', r"invalid JSON: a lone surrogate \\ud800"),
}


@pytest.mark.parametrize("case", sorted(LINES))
def test_convert_counts_a_hostile_line(tmp, capsys, case):
    line, why = LINES[case]
    data = tmp / "in" / "data.jsonl"
    data.write_text(_OK + line + "\n")
    rc, out = _main(capsys, "convert", "llava-cot", "--data", data, *CONVERTERS["llava-cot"](tmp), "--no-progress")
    assert rc == 0 and "Traceback" not in out, out[-2000:]
    summary = json.loads((tmp / "out" / "c.jsonl.summary.json").read_text())
    assert summary["skipped"] == {"invalid-json": 1} and re.search(why, summary["skipped_examples"]["invalid-json"][0])


@pytest.mark.parametrize("case", sorted(LINES))
def test_data_check_names_a_hostile_line(tmp, capsys, case):
    line, why = LINES[case]
    data = tmp / "in" / "data.jsonl"
    data.write_text(_OK.replace(_TAGGED, "A") + line + "\n")
    rc, out = _check(tmp, capsys, data)
    assert rc == 1 and "Traceback" not in out, out[-2000:]
    assert re.search(r"json: 1\n  .*data\.jsonl:2: " + why, out), out[-2000:]


def test_an_inputs_nan_is_written_as_null(tmp, capsys):
    data = tmp / "in" / "data.jsonl"
    data.write_text(_OK.replace('{"id": "r0"', '{"id": "r0", "score": NaN'))
    assert _main(capsys, "convert", "llava-cot", "--data", data, *CONVERTERS["llava-cot"](tmp), "--no-progress")[0] == 0
    for out in ("c.jsonl", "s.jsonl"):
        rec = json.loads((tmp / "out" / out).read_text(), parse_constant=lambda c: pytest.fail(f"{c} written"))
        assert rec["score"] is None


@pytest.mark.parametrize("command", ["convert", "data check"])
def test_a_fifo_as_the_data_file_is_exit_2_not_a_hang(tmp, capsys, command):
    os.mkfifo(tmp / "in" / "data.jsonl")
    argv = (["convert", "questions", "--data", tmp / "in" / "data.jsonl", "--out", tmp / "out" / "q.jsonl"]
            if command == "convert" else ["data", "check", tmp / "in" / "data.jsonl"])
    rc, out = _main(capsys, *argv)  # a hang here is the defect (the suite's timeout stops it)
    assert rc == 2 and re.search(r"data\.jsonl: is a FIFO, not a regular file", out), out[-2000:]
    assert not (tmp / "out").exists()


# name: (argv changes for `convert llava-cot`, the error)
CONVERT_EXIT_2 = {
    "image_folder_missing": (["--image-folder", "{tmp}/nowhere"], r"--image-folder .*nowhere: folder not found"),
    "image_folder_a_file": (["--image-folder", "{tmp}/in/img/ok.png"], r"--image-folder .*ok\.png: is a file"),
}


@pytest.mark.parametrize("case", sorted(CONVERT_EXIT_2))
def test_convert_names_a_bad_image_folder(tmp, capsys, case):
    extra, place = CONVERT_EXIT_2[case]
    data = _write(tmp, _record(0, "img/ok.png"))
    rc, out = _main(capsys, "convert", "llava-cot", "--data", data, *CONVERTERS["llava-cot"](tmp), "--no-progress",
                    *[a.replace("{tmp}", str(tmp)) for a in extra])
    assert rc == 2 and re.search(place, out), out[-2000:]
    assert not (tmp / "out").exists()


def test_convert_counts_an_id_that_is_no_string_or_integer(tmp, capsys):
    data = _write(tmp, _record(0, "img/ok.png"), {**_record(1, "img/ok.png"), "id": {"a": 1}})
    assert _main(capsys, "convert", "llava-cot", "--data", data, *CONVERTERS["llava-cot"](tmp), "--no-progress")[0] == 0
    summary = json.loads((tmp / "out" / "c.jsonl.summary.json").read_text())
    assert summary["skipped"] == {"bad-id": 1} and "got dict" in summary["skipped_examples"]["bad-id"][0]


def test_a_stored_image_whose_bytes_are_text_is_counted_not_dropped(tmp, capsys):
    rec = {**_record(1, answer="a caption"), "image": {"bytes": "iVBORw0KGgo=", "path": "x.png"}}
    data = _write(tmp, _record(0, "img/ok.png", "a caption"), rec)
    rc, out = _main(capsys, "convert", "llava-pretrain", "--data", data, "--out", tmp / "out" / "c.jsonl",
                    "--no-progress")
    assert rc == 0, out[-2000:]
    summary = json.loads((tmp / "out" / "c.jsonl.summary.json").read_text())
    assert summary["skipped"] == {"bad-image": 1} and "got str" in summary["skipped_examples"]["bad-image"][0]


def _garbage_weights(theirs: dict) -> None:
    (theirs["folder"] / "model.safetensors").write_bytes(b"\xff" * 64)


def _tower_missing(theirs: dict) -> None:
    import shutil

    shutil.rmtree(theirs["tower"])


# name: (what is done to a copy of the authors' checkpoint, the error)
UHD_EXIT_2 = {
    "weights_not_safetensors": (_garbage_weights, r"model\.safetensors: cannot read the weights \(safetensors\)"),
    "vision_tower_missing": (_tower_missing, r"--vision-tower .*clip: folder not found"),
}


@pytest.mark.parametrize("case", sorted(UHD_EXIT_2))
def test_convert_llava_uhd_bad_input_is_exit_2(their_folder, tmp_path, capsys, case):  # noqa: F811
    import shutil

    damage, place = UHD_EXIT_2[case]
    theirs = {**their_folder, "folder": tmp_path / "theirs", "tower": tmp_path / "clip"}
    shutil.copytree(their_folder["folder"], theirs["folder"])
    shutil.copytree(their_folder["tower"], theirs["tower"])
    damage(theirs)
    cfg = _cfg(theirs, tmp_path / "ours")
    rc, out = _main(capsys, "convert", "llava-uhd", "--checkpoint", cfg.checkpoint, "--vision-tower", cfg.vision_tower,
                    "--out", cfg.out)
    assert rc == 2 and "Traceback" not in out and re.search(place, out), out[-2000:]
    assert not (tmp_path / "ours").exists()
