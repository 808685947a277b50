"""`sicog data overlap` on a planted set: copies of benchmark images (exact, and resized + JPEG
re-encoded), benchmark questions (verbatim, paraphrased) among clean distractors."""

from __future__ import annotations

import json

import pytest

from sicog.cli import main
from tests.data._overlap_planted import measure, plant


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    truth = plant(root / "in", n_bench=60, n_clean=150, n_exact=8, n_resized=24, n_verbatim=8, n_paraphrase=12)
    return root, truth


def run(root, out, *extra):
    return main(["data", "overlap", "--data", str(root / "in" / "train.jsonl"), "--image-folder",
                 str(root / "in" / "images"), "--benchmark", str(root / "in" / "bench.tsv"), "--out", str(out),
                 "--workers", "2", "--no-progress", *extra])


def test_planted_recall_and_no_false_positive(planted, capsys):
    root, truth = planted
    out = root / "out"
    assert run(root, out) == 0
    got = measure(truth, out / "overlap.jsonl")
    assert got["exact"]["found"] == got["exact"]["planted"]
    assert got["resized"]["found"] >= 0.95 * got["resized"]["planted"]
    assert got["verbatim"]["found"] == got["verbatim"]["planted"]
    assert got["paraphrase/wrapper"]["found"] == got["paraphrase/wrapper"]["planted"]
    assert got["false_positives_clean"] == 0 and got["false_positives_wrong_item"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == 150 + 8 + 24 + 8 + 12 and summary["unreadable"] == 0
    assert summary["benchmarks"]["bench"]["image_exact_pairs"] >= 8
    line = json.loads((out / "overlap.jsonl").read_text().splitlines()[0])
    assert {"record_id", "benchmark", "benchmark_index", "kind", "score"} <= set(line)
    # the same settings again: nothing to do; other settings: refused without --overwrite
    assert run(root, out) == 0
    assert run(root, out, "--phash-threshold", "3") == 2
    assert "other settings" in capsys.readouterr().err
    assert run(root, out, "--phash-threshold", "3", "--overwrite") == 0


def test_out_inside_an_input_is_refused(planted, capsys):
    root, _ = planted
    assert run(root, root / "in" / "images" / "audit") == 2
    err = capsys.readouterr().err
    assert "--out" in err and "--image-folder" in err


def test_missing_data_file_names_it(planted, capsys):
    root, _ = planted
    assert main(["data", "overlap", "--data", str(root / "nope.jsonl"), "--benchmark", str(root / "in" / "bench.tsv"),
                 "--out", str(root / "o2")]) == 2
    assert "nope.jsonl: file not found" in capsys.readouterr().err
