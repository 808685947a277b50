"""`sicog evaluate` end to end: a tiny world benchmark, oracle/constant answerers, a tiny checkpoint."""

import json
import random

import pytest
from openpyxl import load_workbook

from sicog.cli import main
from sicog.data.formats import mcq_prompt, to_cot_question
from sicog.eval.captions import read_caption_benchmark
from sicog.eval.cli import evaluate_checkpoint, resolve_benchmark
from sicog.eval.mcq import read_mcq_tsv
from sicog.utils.io import SicogError
from tests.eval._world import benchmark_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return benchmark_world(tmp_path_factory.mktemp("world"), seed=3, n_images=4)


def mcq_oracle(world, style="direct"):
    """Answers every benchmark item from its truth, in CoT form with the option's text."""
    truth = {}
    for it in read_mcq_tsv(world / "benchmark.tsv"):
        truth[(it.prompt(style), it.load_image().tobytes())] = it.options[it.answer]
    return lambda pairs: [f"The answer is {truth[(p, im.tobytes())]}." for p, im in pairs]


def caption_oracle(world):
    """Describes every benchmark image with the world's own detailed description of its scene."""
    from PIL import Image

    from sicog.world.annotate import direct_description
    from sicog.world.scenes import Scene

    scenes = {}
    for it in read_caption_benchmark(world / "benchmark_captions.jsonl"):
        with Image.open(it.image) as im:
            scenes[im.convert("RGB").tobytes()] = Scene.from_dict(it.scene)
    return lambda pairs: [direct_description(scenes[im.tobytes()], random.Random(0)) for _, im in pairs]


def test_world_oracle_and_constant(world, tmp_path):
    items = read_mcq_tsv(world / "benchmark.tsv")
    assert len(items) == 8
    s = evaluate_checkpoint("unused", f"world:{world}", tmp_path / "oracle", predict=mcq_oracle(world),
                            caption_predict=caption_oracle(world), progress=False)
    assert s["mcq"]["accuracy"] == 1.0 and s["mcq"]["unanswered"] == 0
    assert s["captions"]["object_recall"] == 1.0 and s["captions"]["hallucination_rate"] == 0.0
    assert s["captions"]["attribute_accuracy"] == 1.0
    for letter in "ABCD":
        expected = sum(it.answer == letter for it in items) / len(items)
        s = evaluate_checkpoint("unused", f"world:{world}", tmp_path / letter, captions="off",
                                predict=lambda pairs, x=letter: [x] * len(pairs), progress=False)
        assert s["mcq"]["accuracy"] == pytest.approx(expected)
        assert "captions" not in s


def test_cot_style_prompt_matches_training_format(world, tmp_path):
    it = read_mcq_tsv(world / "benchmark.tsv")[0]
    assert it.prompt("cot") == to_cot_question(mcq_prompt(it.question, it.options, style="direct"))
    s = evaluate_checkpoint("unused", f"world:{world}", tmp_path, prompt_style="cot", captions="off",
                            predict=mcq_oracle(world, "cot"), progress=False)
    assert s["mcq"]["accuracy"] == 1.0 and s["max_new_tokens"] == 512


def test_resolve_benchmark_errors(tmp_path, world):
    tsv, caps, name = resolve_benchmark(f"world:{world}")
    assert tsv == world / "benchmark.tsv" and caps == world / "benchmark_captions.jsonl"
    with pytest.raises(SicogError, match="manifest.json not found"):
        resolve_benchmark(f"world:{tmp_path}")
    with pytest.raises(SicogError, match="file not found"):
        resolve_benchmark(str(tmp_path / "x.tsv"))
    with pytest.raises(SicogError, match="no caption ground truth"):
        evaluate_checkpoint("unused", str(tsv), tmp_path / "o", captions="on", predict=lambda p: [])


@pytest.mark.slow
def test_evaluate_command_on_tiny_checkpoint(world, tmp_path, capsys):
    from sicog.model.checkpoint import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "ckpt", seed=0)
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(ckpt), "--benchmark", f"world:{world}", "--out", str(out),
               "--batch-size", "8", "--max-new-tokens", "3", "--caption-max-new-tokens", "6",
               "--limit", "6", "--no-progress"])
    assert rc == 0
    assert "accuracy" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mcq"]["n"] == 6 and 0.0 <= summary["mcq"]["accuracy"] <= 1.0
    assert summary["captions"]["n"] == 4
    assert len((out / "mcq_predictions.jsonl").read_text().splitlines()) == 6
    ws = load_workbook(out / "mcq_result.xlsx").active
    assert ws.max_row == 7 and [c.value for c in ws[1]][-1] == "hit"
    assert (out / "mcq_result.csv").read_text().startswith("index,question,")
    assert len((out / "captions_predictions.jsonl").read_text().splitlines()) == 4


def test_bad_benchmark_is_a_clean_cli_error(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tquestion\tA\tB\tanswer\n0\tq?\tx\ty\tA\n")
    rc = main(["evaluate", "--model", str(tmp_path), "--benchmark", str(bad), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "missing column 'image'" in capsys.readouterr().err
