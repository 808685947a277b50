"""`sicog evaluate` on bad input: exit 2, the place named, nothing written, inputs unchanged
(tests/reliability/_harness.py); then a finished evaluation that knows its settings, outputs
checked before any work, result files published only at the end, and a second writer refused.

Every case starts from a valid job (the tiny checkpoint copied to {tmp}/model, a TSV in
{tmp}/bench/, caption ground truth in {tmp}/caps/) and changes one thing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from sicog.eval.cli import evaluate_checkpoint
from sicog.eval.config import EvaluateConfig
from sicog.eval.partial import PARTIAL_DIR
from sicog.utils.io import SicogError
from sicog.utils.lock import output_lock
from tests.eval._tsv import MMSTAR_COLUMNS, mmstar_rows, write_tsv
from tests.eval._world import benchmark_world

from ._harness import BadInput, assert_clean_failure, run_sicog, with_flags

JOB = ["evaluate", "--model", "{tmp}/model", "--benchmark", "{tmp}/bench/bench.tsv", "--out", "{tmp}/eval",
       "--batch-size", "4", "--max-new-tokens", "2", "--captions", "off", "--no-progress"]
OUT = ["eval", "eval.lock"]
SCENE = {"objects": [{"shape": "circle", "colour": "red", "size": "large", "cell": "middle center"}]}


def job(**changes: str) -> list[str]:
    """JOB with flags replaced or added."""
    return with_flags(JOB, **changes)


def caps(name: str) -> list[str]:
    return job(captions="on", captions_file=f"{{tmp}}/caps/{name}", caption_max_new_tokens="2")


CASES = [
    BadInput("tsv_not_utf8", job(benchmark="{tmp}/bench/latin1.tsv"), r"latin1\.tsv:3:\d+: not UTF-8 text", OUT),
    BadInput("tsv_answer_and_Answer", job(benchmark="{tmp}/bench/two_answers.tsv"),
             r"two_answers\.tsv:1: columns 'answer' and 'Answer' are the same column", OUT),
    BadInput("captions_file_not_utf8", caps("latin1.jsonl"), r"latin1\.jsonl:2: not UTF-8 text", OUT),
    BadInput("caption_image_dotdot_escape", caps("dotdot.jsonl"),
             r"dotdot\.jsonl:2: key 'image': .*\.\./secret\.png resolves to .*secret\.png, outside the image folder",
             OUT),
    BadInput("caption_image_symlink_outside", caps("link.jsonl"),
             r"link\.jsonl:1: key 'image': .*link\.png resolves to .*secret\.png, outside the image folder", OUT),
    BadInput("corrupt_model", job(model="{tmp}/badmodel"),
             r"corrupt weights file .*badmodel/model\.safetensors \(SafetensorError", OUT),
    BadInput("batch_size_zero", job(batch_size="0"), r"--batch-size \(batch_size\): must be >= 1, got 0", OUT),
    BadInput("out_under_a_file", job(out="{tmp}/afile/eval"), r"--out .*afile/eval: cannot be written: .*afile is a "
             r"file", OUT),
    BadInput("out_is_a_file", job(out="{tmp}/afile"), r"--out .*afile: is a file; expected a folder", OUT),
    BadInput("out_inside_the_model", job(out="{tmp}/model/eval"), r"--out \(.*model/eval\) is inside --model",
             ["model/eval", *OUT]),
    BadInput("out_contains_the_benchmark", job(out="{tmp}/bench"),
             r"--out \(.*/bench\) contains --benchmark \(.*bench/bench\.tsv\)", OUT),
    BadInput("out_inside_the_world", job(benchmark="world:{tmp}/world", out="{tmp}/world/eval"),
             r"--out \(.*world/eval\) is inside --benchmark \(.*/world\)", ["world/eval", *OUT]),
    BadInput("out_inside_the_caption_images", [*caps("caps.jsonl"), "--out", "{tmp}/caps/eval"],
             r"--out \(.*caps/eval\) is inside --captions-file \(its image folder\)", ["caps/eval", *OUT]),
    BadInput("out_holds_other_files", job(out="{tmp}/stuff"),
             r"--out .*stuff holds files that are not an evaluation's \(notes\.txt\)", [*OUT, "stuff.lock"]),
]


def _caption_line(image: str) -> str:
    return json.dumps({"id": image, "image": image, "scene": SCENE}, ensure_ascii=False)


@pytest.fixture
def tmp(tmp_path, tiny_ckpt) -> Path:
    (tmp_path / "bench").mkdir()
    rows = mmstar_rows(4)
    write_tsv(tmp_path / "bench" / "bench.tsv", MMSTAR_COLUMNS, rows)
    text = (tmp_path / "bench" / "bench.tsv").read_text().splitlines()
    text[2] = text[2].replace("What colour", "Quelle couleur \xe0")
    (tmp_path / "bench" / "latin1.tsv").write_bytes(("\n".join(text) + "\n").encode("latin-1"))
    lines = (tmp_path / "bench" / "bench.tsv").read_text().splitlines()  # a second answer column, all "A"
    (tmp_path / "bench" / "two_answers.tsv").write_text("\n".join(
        [lines[0] + "\tAnswer"] + [row + "\tA" for row in lines[1:]]) + "\n")
    d = tmp_path / "caps"
    (d / "img").mkdir(parents=True)
    Image.new("RGB", (32, 32), (200, 30, 30)).save(d / "img" / "a.png")
    Image.new("RGB", (17, 13), (9, 9, 9)).save(tmp_path / "secret.png")
    (d / "img" / "link.png").symlink_to(tmp_path / "secret.png")
    (d / "caps.jsonl").write_text(_caption_line("img/a.png") + "\n")
    (d / "latin1.jsonl").write_bytes((_caption_line("img/a.png") + "\n" + _caption_line("img/\xe0.png")
                                      + "\n").encode("latin-1"))
    (d / "dotdot.jsonl").write_text(_caption_line("img/a.png") + "\n" + _caption_line("../secret.png") + "\n")
    (d / "link.jsonl").write_text(_caption_line("img/link.png") + "\n")
    shutil.copytree(tiny_ckpt, tmp_path / "model")
    shutil.copytree(tiny_ckpt, tmp_path / "badmodel")
    weights = tmp_path / "badmodel" / "model.safetensors"
    weights.write_bytes(b"\x00not a safetensors header" * 10)
    benchmark_world(tmp_path / "world", seed=1, n_images=2)
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine\n")
    (tmp_path / "afile").write_text("a file, not a folder\n")
    return tmp_path


@pytest.mark.slow
def test_the_control_job_passes(tmp):
    res = run_sicog(caps("caps.jsonl"), tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads((tmp / "eval" / "summary.json").read_text())["mcq"]["n"] == 4
    assert not (tmp / "eval.lock").exists() and not (tmp / "eval" / PARTIAL_DIR).exists()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_evaluate_input_fails_cleanly(case, tmp):
    assert_clean_failure(case, tmp)


class Counted:
    """A constant answerer that counts its calls; raises KeyboardInterrupt after `stop_after` calls."""

    def __init__(self, stop_after: int | None = None):
        self.calls, self.stop_after = 0, stop_after

    def __call__(self, pairs):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return ["A"] * len(pairs)


def _cfg(tmp: Path, **kw) -> EvaluateConfig:
    return EvaluateConfig(**{"model": str(tmp / "model"), "benchmark": str(tmp / "bench" / "bench.tsv"),
                             "out": str(tmp / "eval"), "batch_size": 2, "captions": "off", "progress": False, **kw})


def test_a_finished_evaluation_knows_its_settings(tmp, caplog):
    caplog.set_level(logging.INFO)
    out = tmp / "eval"
    first = evaluate_checkpoint(_cfg(tmp, shuffled_image_control=True), predict=Counted())
    assert first["settings"]["prompt_style"] == "direct" and first["settings"]["model"]["model.safetensors"]
    names = sorted(p.name for p in out.iterdir())
    assert "mcq_shuffled_images_result.csv" in names and PARTIAL_DIR not in names
    stamp = {p.name: p.read_bytes() for p in out.iterdir()}
    again = Counted()
    assert evaluate_checkpoint(_cfg(tmp, shuffled_image_control=True), predict=again) == first
    assert again.calls == 0 and "nothing to do" in caplog.text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == stamp
    for change, diff in [({"prompt_style": "cot"}, "prompt_style: earlier 'direct', now 'cot'"),
                         ({"limit": 2}, "limit: earlier None, now 2"), ({"batch_size": 3}, "batch_size: earlier 2")]:
        with pytest.raises(SicogError, match=rf"{out} was made with other settings \(.*{diff}.*\); pass --overwrite"):
            evaluate_checkpoint(_cfg(tmp, shuffled_image_control=True, **change), predict=again)
    with open(tmp / "bench" / "bench.tsv", "a") as fh:  # the same path, other content
        fh.write(open(tmp / "bench" / "bench.tsv").read().splitlines()[1].replace("0\t", "9\t", 1) + "\n")
    with pytest.raises(SicogError, match="benchmark: earlier '"):
        evaluate_checkpoint(_cfg(tmp, shuffled_image_control=True), predict=again)
    assert again.calls == 0 and {p.name: p.read_bytes() for p in out.iterdir()} == stamp
    (out / "notes.txt").write_text("mine\n")  # --overwrite removes the earlier results only
    summary = evaluate_checkpoint(_cfg(tmp, overwrite=True), predict=Counted())
    assert summary["mcq"]["n"] == 5 and "mcq_shuffled_images" not in summary
    assert sorted(p.name for p in out.iterdir()) == ["mcq_predictions.jsonl", "mcq_result.csv", "mcq_result.xlsx",
                                                     "notes.txt", "summary.json"]


def test_an_unwritable_out_fails_before_the_model_answers_anything(tmp):
    predict = Counted()
    with pytest.raises(SicogError, match=r"cannot be written"):
        evaluate_checkpoint(_cfg(tmp, out=str(tmp / "afile" / "eval")), predict=predict)
    assert predict.calls == 0


def test_result_files_appear_only_when_the_evaluation_is_finished(tmp):
    out = tmp / "eval"
    with pytest.raises(KeyboardInterrupt):  # stops in the shuffled-image control, after the main scoring
        evaluate_checkpoint(_cfg(tmp, shuffled_image_control=True), predict=Counted(stop_after=3))
    assert sorted(os.listdir(out)) == [PARTIAL_DIR]   # the main results wait, staged, under .partial/
    assert (out / PARTIAL_DIR / "results" / "mcq_result.csv").is_file()
    predict = Counted()
    summary = evaluate_checkpoint(_cfg(tmp, shuffled_image_control=True), predict=predict)
    assert predict.calls == 1 and summary["mcq"]["n"] == 4   # resumed: the rest of the control only
    assert "summary.json" in os.listdir(out) and not (out / PARTIAL_DIR).exists()


def test_a_second_writer_is_refused_while_one_holds_the_output(tmp):
    with output_lock(tmp / "eval"):
        res = run_sicog(JOB, tmp)
    assert res.returncode == 2
    assert re.search(rf"eval is being written by pid {os.getpid()} \(lock .*eval\.lock\)", res.stderr)
    assert not (tmp / "eval").exists()
