"""Image paths and files that must never cost a traceback or a hang: a NUL in the path, a symlink
loop, a 300-character name, a FIFO, a folder, a decompression bomb (a ~50 KB PNG of 20000x20000,
refused from its header). `sample` and `dpo` stop with exit 2 naming file:line and the cause;
`annotate --dry-run` counts the item as unsendable (and does not block on the FIFO).
In-process (sicog.cli.main): no model is needed; `sample` reads an image when its item is sent, so
it gets a server that answers the good record (a dead one would refuse that record's request,
concurrently with the bad image's check, and either error could end the run first).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from sicog.cli import main as sicog_main
from tests.stages._loopback import LoopbackServer
from tests.stages.conftest import dpo_config, write_tiny_dataset, write_tiny_pairs

# name: (the record's image path, what the error must say)
BAD = {
    "nul_in_path": ("img/a\x00b.png", r"the path contains a NUL byte"),
    "symlink_loop": ("img/loop.png", r"a symlink loop"),
    "name_too_long": ("img/" + "x" * 300 + ".png", r"a file name too long"),
    "fifo": ("img/fifo.png", r"is a FIFO, not a regular file"),
    "folder": ("img/dir.png", r"is a folder, not a regular file"),
    "decompression_bomb": ("img/bomb.png", r"400000000 pixels|too large"),
}


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (20000, 20000)).save(path)  # ~50 KB on disk, 400 M pixels decoded
    assert path.stat().st_size < 100_000
    return path


def _folder(root: Path, bomb: Path) -> Path:
    img = root / "img"
    img.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(img / "ok.png")
    os.symlink("loop.png", img / "loop.png")
    os.mkfifo(img / "fifo.png")
    (img / "dir.png").mkdir()
    os.link(bomb, img / "bomb.png")
    return root


def _caption_file(root: Path, image: str) -> Path:
    recs = [{"id": "r0", "image": "img/ok.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "caption of r0"}]},
        {"id": "r1", "image": image, "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "caption of r1"}]}]
    path = root / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def _main(capsys, *argv) -> tuple[int, str]:
    rc = sicog_main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.err + out.out


class _OneAnswer(LoopbackServer):
    """Answers every chat completion with one choice."""

    def respond(self, path, body, auth):
        return 200, {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                                                   "content": "An answer."}}],
                     "usage": {"completion_tokens": 2}}, None


@pytest.mark.parametrize("case", sorted(BAD))
def test_sample_names_the_bad_image(tmp_path, capsys, bomb, case):
    image, why = BAD[case]
    data = _caption_file(_folder(tmp_path / "in", bomb), image)
    with _OneAnswer() as server:
        rc, err = _main(capsys, "sample", "--backend", "openai", "--api-base", server.base_url, "--model", "m",
                        "--data", data, "--image-folder", tmp_path / "in", "--out", tmp_path / "out.jsonl",
                        "--mode", "cot", "--n", "1", "--max-retries", "0", "--no-progress")
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    assert re.search(r"data\.jsonl:2: record 'r1'.*" + f"({why})", err), err[-2000:]


@pytest.mark.parametrize("case", sorted(BAD))
def test_annotate_dry_run_counts_the_bad_image(tmp_path, capsys, bomb, case):
    image, why = BAD[case]
    data = _caption_file(_folder(tmp_path / "in", bomb), image)
    rc, out = _main(capsys, "annotate", "cod", "--data", data, "--image-folder", tmp_path / "in", "--out", tmp_path / "out",
                    "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--dry-run", "--no-progress")
    assert rc == 0 and "Traceback" not in out, out[-2000:]
    assert re.search(r"dry run: 1 request\(s\) for 2 item\(s\)", out), out[-2000:]


@pytest.mark.parametrize("case", sorted(BAD))
def test_dpo_names_the_bad_image(tmp_path, capsys, bomb, case):
    image, why = BAD[case]
    pairs = write_tiny_pairs(tmp_path / "data", write_tiny_dataset(tmp_path / "data", n=12))
    _folder(tmp_path / "data", bomb)
    rows = pairs["pairs"].read_text().splitlines()
    rec = json.loads(rows[2])
    rec["image"] = image
    rows[2] = json.dumps(rec)
    pairs["pairs"].write_text("\n".join(rows) + "\n")
    rc, err = _main(capsys, "dpo", dpo_config(tmp_path, pairs, "out"))
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    assert re.search(r"pairs\.jsonl:3: .*" + f"({why}|too large)", err), err[-2000:]
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- over a uhd model's pixel cap
@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """9000x9000 = 81 M pixels: under PIL's bomb limit, over the uhd processor's max_pixels (50 M)."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("1", (9000, 9000)).save(path)
    return path


def _no_model(*args, **kwargs):
    raise AssertionError("a model was loaded before the images were checked")


def _sample_over_limit(tmp: Path, huge: Path, model: Path) -> list:
    _folder(tmp / "in", huge)
    os.link(huge, tmp / "in" / "img" / "huge.png")
    data = _caption_file(tmp / "in", "img/huge.png")
    return ["sample", "--backend", "hf", "--model", model, "--data", data, "--image-folder", tmp / "in",
            "--out", tmp / "out.jsonl", "--mode", "cot", "--n", "1", "--no-progress"]


def _evaluate_over_limit(tmp: Path, huge: Path, model: Path) -> list:
    import base64

    from tests.eval._tsv import MMSTAR_COLUMNS, mmstar_rows, write_tsv

    rows = mmstar_rows(3)
    rows[1]["image"] = base64.b64encode(huge.read_bytes()).decode("ascii")
    write_tsv(tmp / "bench.tsv", MMSTAR_COLUMNS, rows)
    return ["evaluate", "--model", model, "--benchmark", tmp / "bench.tsv", "--out", tmp / "eval",
            "--captions", "off", "--no-progress"]


# command: (its argv, the error: file:line of the record, the size, the cap)
OVER_LIMIT = {
    "sample": (_sample_over_limit, r"data\.jsonl:2: record 'r1': image .*huge\.png is 9000x9000 = 81000000 pixels, "
                                   r"above the limit of 50000000"),
    "evaluate": (_evaluate_over_limit, r"bench\.tsv:3: benchmark row '1': image <bytes> is 9000x9000 = 81000000 "
                                       r"pixels, above the limit of 50000000"),
}


@pytest.mark.parametrize("case", sorted(OVER_LIMIT))
def test_an_image_over_the_uhd_cap_fails_before_the_model_loads(tmp_path, capsys, monkeypatch, huge_png,
                                                                tiny_uhd_ckpt, case):
    import sicog.model.checkpoint

    argv, place = OVER_LIMIT[case]
    monkeypatch.setattr(sicog.model.checkpoint, "load_checkpoint", _no_model)
    rc, err = _main(capsys, *argv(tmp_path, huge_png, tiny_uhd_ckpt))
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    assert re.search(place, err), err[-2000:]
