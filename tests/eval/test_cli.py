"""`sicog evaluate` end to end: a tiny world benchmark, oracle/constant answerers, a tiny checkpoint."""

import json
import random
import shutil
import zlib

import pytest
from openpyxl import load_workbook

from sicog.cli import main
from sicog.config import save_config
from sicog.data.formats import SHORT_ANSWER_INSTRUCTION, mcq_prompt, to_cot_question
from sicog.demo.scoring import read_caption_benchmark
from sicog.eval.cli import evaluate_checkpoint, resolve_benchmark
from sicog.eval.config import EvaluateConfig
from sicog.eval.mcq import read_mcq_tsv
from sicog.eval.partial import PARTIAL_DIR, PartialRun
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


def _cfg(world, out, **kw) -> EvaluateConfig:
    return EvaluateConfig(**{"model": "unused", "benchmark": f"world:{world}", "out": str(out), "progress": False,
                             **kw})


def caption_oracle(world):
    """Describes every benchmark image with the world's own detailed description of its scene."""
    from PIL import Image

    from sicog.demo.world.annotate import direct_description
    from sicog.demo.world.scenes import Scene

    scenes = {}
    for it in read_caption_benchmark(world / "benchmark_captions.jsonl"):
        with Image.open(it.image) as im:
            scenes[im.convert("RGB").tobytes()] = Scene.from_dict(it.scene)
    return lambda pairs: [direct_description(scenes[im.tobytes()], random.Random(0)) for _, im in pairs]


def test_world_oracle_and_constant(world, tmp_path):
    items = read_mcq_tsv(world / "benchmark.tsv")
    assert len(items) == 8
    s = evaluate_checkpoint(_cfg(world, tmp_path / "oracle"), predict=mcq_oracle(world),
                            caption_predict=caption_oracle(world))
    assert s["mcq"]["accuracy"] == 1.0 and s["mcq"]["unanswered"] == 0
    assert s["captions"]["object_recall"] == 1.0 and s["captions"]["hallucination_rate"] == 0.0
    assert s["captions"]["attribute_accuracy"] == 1.0
    for letter in "ABCD":
        expected = sum(it.answer == letter for it in items) / len(items)
        s = evaluate_checkpoint(_cfg(world, tmp_path / letter, captions="off"),
                                predict=lambda pairs, x=letter: [x] * len(pairs))
        assert s["mcq"]["accuracy"] == pytest.approx(expected)
        assert s["mcq"]["vlmevalkit_exact_matching"]["accuracy"] == pytest.approx(expected)   # a bare letter
        assert "captions" not in s


def test_cot_style_prompt_matches_training_format(world, tmp_path):
    it = read_mcq_tsv(world / "benchmark.tsv")[0]
    assert it.prompt("cot") == to_cot_question(mcq_prompt(it.question, it.options, style="direct"))
    s = evaluate_checkpoint(_cfg(world, tmp_path, prompt_style="cot", captions="off"),
                            predict=mcq_oracle(world, "cot"))
    assert s["mcq"]["accuracy"] == 1.0 and s["max_new_tokens"] == 512


def test_open_cot_asks_the_training_question_without_options_and_reads_the_option_text(world, tmp_path):
    it = read_mcq_tsv(world / "benchmark.tsv")[0]
    prompt = it.prompt("open_cot")
    assert prompt == to_cot_question(f"{it.question}\n{SHORT_ANSWER_INSTRUCTION}")  # the world's CoT prompt
    assert not any(f"{letter}. {text}" in prompt for letter, text in it.options.items())
    s = evaluate_checkpoint(_cfg(world, tmp_path, prompt_style="open_cot", captions="off"),
                            predict=mcq_oracle(world, "open_cot"))
    assert s["mcq"]["accuracy"] == 1.0 and s["max_new_tokens"] == 512


def test_shuffled_control_asks_the_headlines_own_questions(world, tmp_path):
    """A generate headline limited to N items gets its control on those N questions, not on every item."""
    asked = []

    def answer(pairs):
        asked.extend(p for p, _ in pairs)
        return ["A"] * len(pairs)

    s = evaluate_checkpoint(_cfg(world, tmp_path, captions="off", mcq_scoring="generate,likelihood",
                                 generate_limit=3, shuffled_image_control=True),
                            predict=answer, option_scorer=counted_predictors(world, Budget())["option_scorer"])
    assert s["mcq"]["n"] == 3 and s["mcq_shuffled_images"]["n"] == 3
    assert s["mcq_by_scoring"]["likelihood"]["n"] == len(read_mcq_tsv(world / "benchmark.tsv"))
    assert asked[3:] == asked[:3]   # the same three prompts, with other images


def test_generate_limit_scores_the_first_items_and_each_subtype_apart(world, tmp_path):
    items = read_mcq_tsv(world / "benchmark.tsv")
    s = evaluate_checkpoint(_cfg(world, tmp_path, prompt_style="open_cot", captions="off", generate_limit=3),
                            predict=mcq_oracle(world, "open_cot"))
    assert s["mcq"]["n"] == 3 and s["settings"]["generate_limit"] == 3
    subs = s["mcq"]["per_subcategory"]
    expected: dict = {}
    for it in items[:3]:
        expected[it.row["l2-category"]] = expected.get(it.row["l2-category"], 0) + 1
    assert {k: v["n"] for k, v in subs.items()} == expected
    assert all(v["accuracy"] == 1.0 and v["ci95"] == [1.0, 1.0] for v in subs.values())
    # a constant answerer: each subtype's accuracy is its own share of that letter
    s = evaluate_checkpoint(_cfg(world, tmp_path / "A", captions="off"), predict=lambda pairs: ["A"] * len(pairs))
    for sub, v in s["mcq"]["per_subcategory"].items():
        mine = [it for it in items if it.row["l2-category"] == sub]
        assert v["n"] == len(mine) and v["accuracy"] == pytest.approx(sum(it.answer == "A" for it in mine) / len(mine))


def test_resolve_benchmark_errors(tmp_path, world):
    tsv, caps, name, _scorer = resolve_benchmark(f"world:{world}")
    assert tsv == world / "benchmark.tsv" and caps == world / "benchmark_captions.jsonl"
    with pytest.raises(SicogError, match="manifest.json not found"):
        resolve_benchmark(f"world:{tmp_path}")
    with pytest.raises(SicogError, match="file not found"):
        resolve_benchmark(str(tmp_path / "x.tsv"))
    with pytest.raises(SicogError, match="no caption ground truth"):
        evaluate_checkpoint(EvaluateConfig(model="unused", benchmark=str(tsv), out=str(tmp_path / "o"),
                                           captions="on"), predict=lambda p: [])


@pytest.mark.slow
def test_evaluate_command_on_tiny_checkpoint(world, tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(tiny_ckpt), "--benchmark", f"world:{world}", "--out", str(out),
               "--batch-size", "8", "--max-new-tokens", "3", "--caption-max-new-tokens", "6",
               "--limit", "6", "--caption-limit", "3", "--no-progress"])
    assert rc == 0
    assert "accuracy" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mcq"]["n"] == 6 and 0.0 <= summary["mcq"]["accuracy"] <= 1.0
    lo, hi = summary["mcq"]["ci95"]
    assert 0.0 <= lo <= summary["mcq"]["accuracy"] <= hi <= 1.0
    assert summary["captions"]["n"] == 3   # --caption-limit, not --limit (the world has 4 caption images)
    assert len((out / "mcq_predictions.jsonl").read_text().splitlines()) == 6
    ws = load_workbook(out / "mcq_result.xlsx").active
    assert ws.max_row == 7 and [c.value for c in ws[1]][-1] == "hit"
    assert (out / "mcq_result.csv").read_text().startswith("index,question,")
    assert len((out / "captions_predictions.jsonl").read_text().splitlines()) == 3


def test_bad_benchmark_is_a_clean_cli_error(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("index\tquestion\tA\tB\tanswer\n0\tq?\tx\ty\tA\n")
    rc = main(["evaluate", "--model", str(tmp_path / "ckpt"), "--benchmark", str(bad), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "missing column 'image'" in capsys.readouterr().err


def test_config_yaml_is_the_command_and_flags_override_it(world, tiny_ckpt, tmp_path, capsys):
    """`sicog evaluate evaluate.yaml --limit 2`: a saved EvaluateConfig is a complete command line."""
    cfg = EvaluateConfig(model=str(tiny_ckpt), benchmark=f"world:{world}", out=str(tmp_path / "eval"),
                         batch_size=4, captions="off", mcq_scoring="likelihood", limit=3, progress=False)
    save_config(cfg, tmp_path / "evaluate.yaml")
    assert main(["evaluate", str(tmp_path / "evaluate.yaml"), "--limit", "2"]) == 0
    assert "scoring likelihood" in capsys.readouterr().out
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["mcq"]["n"] == 2 and summary["limit"] == 2 and "captions" not in summary
    assert not (tmp_path / "eval" / ".partial").exists()


@pytest.mark.parametrize("argv, message", [
    (["--benchmark", "b.tsv"], "--model is required (or `model:` in CONFIG.yaml)"),
    (["--model", "m", "--benchmark", "b.tsv", "--batch-size", "0"], "--batch-size (batch_size): must be >= 1, got 0"),
])
def test_missing_or_bad_settings_are_clean_errors(tmp_path, capsys, argv, message):
    assert main(["evaluate", *argv]) == 2
    assert message in capsys.readouterr().err


class Budget:
    """Counts the items all predictors answer; past `limit` the next call raises KeyboardInterrupt."""

    def __init__(self, limit=None):
        self.limit, self.used = limit, 0

    def take(self, n: int) -> None:
        if self.limit is not None and self.used + n > self.limit:
            raise KeyboardInterrupt
        self.used += n


def counted_predictors(world, budget: Budget) -> dict:
    """Deterministic answerers for every way (the oracle where it knows, else a checksum's letter)."""
    truth = {}
    for it in read_mcq_tsv(world / "benchmark.tsv"):
        truth[(it.prompt(), it.load_image().tobytes())] = it.options[it.answer]
    captions = caption_oracle(world)

    def mcq(pairs):
        budget.take(len(pairs))
        return [f"The answer is {truth.get((p, im.tobytes()), 'ABCD'[zlib.crc32(im.tobytes()) % 4])}."
                for p, im in pairs]

    def describe(pairs):
        budget.take(len(pairs))
        return captions(pairs)

    class Options:
        def score(self, requests):
            budget.take(len(requests))
            return [[-(zlib.crc32((q + c).encode() + im.tobytes()) % 97) / 7 for c in cands]
                    for q, im, cands in requests]

    return {"predict": mcq, "caption_predict": describe, "option_scorer": Options()}


def _resumable(world, out, **kw) -> EvaluateConfig:
    return _cfg(world, out, **{"batch_size": 3, "mcq_scoring": "generate,likelihood", "shuffled_image_control": True,
                               **kw})


def _outputs(out) -> dict:
    """Every output file: bytes, except the xlsx (cell values: the zip holds times) and the summary's clock."""
    files = {}
    for f in sorted(out.iterdir()):
        if f.suffix == ".xlsx":
            files[f.name] = [list(r) for r in load_workbook(f).active.iter_rows(values_only=True)]
        elif f.name == "summary.json":
            files[f.name] = {k: v for k, v in json.loads(f.read_text()).items() if k != "seconds"}
        else:
            files[f.name] = f.read_bytes()
    return files


# 8 questions and 4 caption images in chunks of 3: generate (8), likelihood (8), shuffled (8), captions (4)
@pytest.mark.parametrize("stop_after", [4, 13, 20, 27])
def test_interrupted_evaluation_resumes_with_identical_results(world, tmp_path, stop_after):
    reference = evaluate_checkpoint(_resumable(world, tmp_path / "ref"), **counted_predictors(world, Budget()))
    budget = Budget(stop_after)
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoint(_resumable(world, tmp_path / "out"), **counted_predictors(world, budget))
    partial = tmp_path / "out" / PARTIAL_DIR
    stored = sum(len(f.read_text().splitlines()) for f in partial.glob("*.jsonl"))
    assert stored == budget.used and stored > 0 and (partial / "settings.json").is_file()
    assert not (tmp_path / "out" / "summary.json").exists()

    again = Budget()
    resumed = evaluate_checkpoint(_resumable(world, tmp_path / "out"), **counted_predictors(world, again))
    assert again.used == 28 - stored   # only what the interrupted run had not finished is asked
    assert _outputs(tmp_path / "out") == _outputs(tmp_path / "ref")
    assert {k: v for k, v in resumed.items() if k != "seconds"} == \
        {k: v for k, v in reference.items() if k != "seconds"}
    assert not partial.exists()


@pytest.mark.slow
def test_resume_on_tiny_checkpoint_matches_an_uninterrupted_run(world, tiny_ckpt, tmp_path):
    """Batched greedy decoding of a real model: resumed chunks keep the boundaries (and padding) of
    an uninterrupted run, so the replies are the same."""
    from sicog.eval.predict import checkpoint_predictor

    model = checkpoint_predictor(tiny_ckpt, batch_size=3, max_new_tokens=4, device="cpu")

    def run(out, budget):
        def predict(pairs):
            budget.take(len(pairs))
            return model(pairs)
        return evaluate_checkpoint(_cfg(world, out, model=str(tiny_ckpt), batch_size=3, max_new_tokens=4,
                                        captions="off", device="cpu"), predict=predict)

    run(tmp_path / "ref", Budget())
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "out", Budget(4))
    again = Budget()
    run(tmp_path / "out", again)
    assert again.used == 5 and _outputs(tmp_path / "out") == _outputs(tmp_path / "ref")


def test_resume_with_other_settings_is_refused_until_the_partial_folder_is_removed(world, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        evaluate_checkpoint(_resumable(world, tmp_path), **counted_predictors(world, Budget(4)))
    with pytest.raises(SicogError, match=r"other settings \(batch_size\).*remove .*\.partial to start over"):
        evaluate_checkpoint(_resumable(world, tmp_path, batch_size=4), **counted_predictors(world, Budget()))
    shutil.rmtree(tmp_path / PARTIAL_DIR)
    budget = Budget()
    evaluate_checkpoint(_resumable(world, tmp_path, batch_size=4), **counted_predictors(world, budget))
    assert budget.used == 28 and (tmp_path / "summary.json").is_file()


def test_partial_keeps_whole_chunks_and_drops_a_torn_line(tmp_path):
    part = PartialRun(tmp_path, {"batch_size": 2})
    part.start()
    part.append("generate", [{"key": str(i), "prediction": "A"} for i in range(3)])
    with open(tmp_path / PARTIAL_DIR / "generate.jsonl", "a") as fh:
        fh.write('{"key": "3", "predic')   # a kill in the middle of a line
    keys = [str(i) for i in range(6)]
    assert [r["key"] for r in part.done("generate", keys, chunk_size=2)] == ["0", "1"]   # chunk 2-3 is asked again
    assert len((tmp_path / PARTIAL_DIR / "generate.jsonl").read_text().splitlines()) == 2
    assert [r["key"] for r in part.done("generate", ["0", "1"], chunk_size=2)] == ["0", "1"]   # all items: kept
    assert part.done("generate", ["9", "1"], chunk_size=2) == []   # another item order: nothing reused
    PartialRun(tmp_path, {"batch_size": 5}).start()   # nothing stored any more: other settings start over
    assert json.loads((tmp_path / PARTIAL_DIR / "settings.json").read_text()) == {"batch_size": 5}
