"""`sicog world` on bad input: exit 2, the flag or path named, nothing written, inputs unchanged
(tests/reliability/_harness.py); then --overwrite that replaces a world file by file and never
touches a file the user put in the folder, and a second writer refused.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from sicog.demo.world.generate import PENDING
from sicog.utils.lock import output_lock

from ._harness import BadInput, assert_clean_failure, run_sicog

SMALL = ["--n-align", "3", "--n-annotated", "1", "--n-reasoning", "1", "--n-instructions", "1",
         "--n-unlabeled-images", "1", "--n-unlabeled-questions", "1", "--n-benchmark", "2", "--image-size", "48",
         "--no-progress"]
OUT = ["w", "w.lock"]


def world(out: str = "{tmp}/w", *flags: str) -> list[str]:
    return ["world", "--out", out, *SMALL, *flags]


CASES = [
    BadInput("overlap_prob_above_one", world("{tmp}/w", "--overlap-prob", "3"),
             r"--overlap-prob: overlap_prob must be within 0\.\.1, got 3\.0", OUT),
    BadInput("noise_sd_negative", world("{tmp}/w", "--noise-sd", "-1"), r"--noise-sd: noise_sd must be within 0\.\.64",
             OUT),
    BadInput("max_specks_negative", world("{tmp}/w", "--max-specks", "-2"), r"--max-specks: max_specks must be within",
             OUT),
    BadInput("mcq_fraction_above_one", world("{tmp}/w", "--mcq-fraction", "2"),
             r"--mcq-fraction: mcq_fraction must be within 0\.\.1, got 2\.0", OUT),
    BadInput("n_align_negative", world("{tmp}/w", "--n-align", "-1"), r"--n-align: n_align must be >= 0, got -1", OUT),
    BadInput("image_size_too_small", world("{tmp}/w", "--image-size", "16"), r"--image-size: image_size must be within",
             OUT),
    BadInput("too_few_shapes", world("{tmp}/w", "--shapes", "circle,square"), r"--shapes: shapes must be >= 4", OUT),
    BadInput("out_holds_no_world", world("{tmp}/stuff"), r"--out .*stuff is not empty and holds no world",
             ["stuff.lock", "stuff/images", "stuff/manifest.json"]),
    BadInput("out_holds_no_world_even_with_overwrite", world("{tmp}/stuff", "--overwrite"),
             r"--out .*stuff is not empty and holds no world", ["stuff.lock", "stuff/images", "stuff/manifest.json"]),
    BadInput("out_is_a_file", world("{tmp}/afile"), r"--out .*afile: is a file; expected a folder", ["afile.lock"]),
    BadInput("out_under_a_file", world("{tmp}/afile/w"), r"--out .*afile/w: cannot be written: .*afile is a file"),
    BadInput("manifest_is_not_a_world", world("{tmp}/fake", "--overwrite"),
             r"fake/manifest\.json is not the manifest of a world", ["fake.lock", "fake/images"]),
    BadInput("other_settings_without_overwrite", world("{tmp}/existing", "--seed", "5"),
             r"existing already holds a world with other settings .*pass --overwrite", ["existing.lock"]),
]


@pytest.fixture(scope="module")
def existing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world_src")
    res = run_sicog(world(str(root / "existing")), root)
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "existing"


@pytest.fixture
def tmp(tmp_path, existing) -> Path:
    import shutil

    shutil.copytree(existing, tmp_path / "existing")
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine\n")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "manifest.json").write_text("[]\n")
    (tmp_path / "afile").write_text("a file, not a folder\n")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_world_input_fails_cleanly(case, tmp):
    assert_clean_failure(case, tmp)


def _align_images(w: Path) -> list[str]:
    return sorted(p.name for p in (w / "images" / "align").iterdir())


def test_overwrite_replaces_a_world_file_by_file_and_keeps_the_users_files(tmp):
    w = tmp / "existing"
    Image.new("RGB", (8, 8)).save(w / "images" / "mine.png")
    Image.new("RGB", (8, 8)).save(w / "images" / "align" / "mine.png")
    (w / "notes.txt").write_text("mine\n")
    assert _align_images(w) == ["align-000000.png", "align-000001.png", "align-000002.png", "mine.png"]
    res = run_sicog(world(str(w), "--overwrite", "--seed", "1", "--n-align", "1"), tmp)
    assert res.returncode == 0, res.stderr[-2000:]
    assert _align_images(w) == ["align-000000.png", "mine.png"]  # the old world's extra images went, one by one
    assert (w / "images" / "mine.png").is_file() and (w / "notes.txt").read_text() == "mine\n"
    manifest = json.loads((w / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["n_images"]["align"] == 1
    assert not (w / PENDING).exists() and not (tmp / "existing.lock").exists()
    res = run_sicog(world(str(w), "--seed", "1", "--n-align", "1"), tmp)  # the same settings: reused
    assert res.returncode == 0 and "reusing it" in res.stderr


def test_an_interrupted_overwrite_is_continued_and_cleans_up_after_both_worlds(tmp):
    w = tmp / "existing"  # as a kill leaves it: no manifest, the pending marker lists the old world's images
    (w / "manifest.json").unlink()
    (w / PENDING).write_text(json.dumps({"n_images": {"align": 3, "bench": 2}}))
    (w / "images" / "align" / "mine.png").write_bytes(b"mine")
    res = run_sicog(world(str(w), "--n-align", "2"), tmp)  # an unfinished world needs no --overwrite
    assert res.returncode == 0, res.stderr[-2000:]
    assert _align_images(w) == ["align-000000.png", "align-000001.png", "mine.png"]
    assert (w / "manifest.json").is_file() and not (w / PENDING).exists()


def test_a_second_writer_is_refused_while_one_holds_the_folder(tmp):
    with output_lock(tmp / "w"):
        res = run_sicog(world(), tmp)
    assert res.returncode == 2
    assert re.search(rf"w is being written by pid {os.getpid()} \(lock .*/w\.lock\)", res.stderr)
    assert not (tmp / "w").exists()
