"""Multiple choice by likelihood: exact log-probs under batching, option choice, the CLI flag."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from sicog.cli import main
from sicog.eval.likelihood import OptionScorer, evaluate_mcq_by_likelihood, open_question
from sicog.eval.mcq import McqItem, read_mcq_tsv
from sicog.model.generation import render_prompt
from tests.eval._world import benchmark_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return benchmark_world(tmp_path_factory.mktemp("world"), seed=5, n_images=3)


def _image(seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))


def _reference_logprob(model, processor, question, image, reply):
    """log p(reply + end | prompt) from one unpadded forward pass, token by token."""
    prompt = render_prompt(processor, question, image is not None)
    tok = processor.tokenizer
    kw = {"images": [image]} if image is not None else {}
    full = processor(text=[prompt + reply + tok.eos_token], return_tensors="pt", **kw)
    n_prompt = len(processor(text=[prompt], return_tensors="pt", **kw)["input_ids"][0])
    with torch.no_grad():
        logits = model(**full).logits[0].float()
    ids = full["input_ids"][0]
    lp = torch.log_softmax(logits, -1)
    return float(sum(lp[t - 1, ids[t]] for t in range(n_prompt, len(ids))))


def test_scores_equal_unbatched_log_probs(tiny):
    model, processor = tiny
    requests = [("How many circles are there?", _image(0), ["2", "three", "a red square"]),
                ("Which colour is most common?", None, ["blue", "green"]),
                ("What shape is the red object?", _image(1), ["circle", "diamond"])]
    # batch size 3 mixes rows with and without an image and splits requests across batches
    got = OptionScorer(model, processor, batch_size=3).score(requests)
    assert [len(s) for s in got] == [3, 2, 2]
    for (q, im, cands), scores in zip(requests, got):
        for c, s in zip(cands, scores):
            assert s == pytest.approx(_reference_logprob(model, processor, q, im, c), abs=1e-3)
            assert s < 0


def test_options_scored_from_their_shared_prompt_equal_whole_sequences(tiny, monkeypatch):
    """Every item with an image: each prompt is read once and its options scored from its keys and
    values; prompts of different lengths (padding) and options of different lengths give the log-probs
    of one unpadded pass each."""
    model, processor = tiny
    requests = [("How many circles are there?", _image(0), ["2", "three", "a red square", "none at all here"]),
                ("What shape is the small red object in the top left corner?", _image(1), ["circle", "diamond"]),
                ("Colour?", _image(2), ["blue", "green", "a dark yellow one"])]
    scorer = OptionScorer(model, processor, batch_size=8)   # two questions per pass: a second chunk
    monkeypatch.setattr(scorer, "_score_rows", lambda _: pytest.fail("scored one whole sequence per option"))
    got = scorer.score(requests)
    assert [len(s) for s in got] == [4, 2, 3]
    for (q, im, cands), scores in zip(requests, got):
        for c, s in zip(cands, scores):
            assert s == pytest.approx(_reference_logprob(model, processor, q, im, c), abs=1e-3)


def test_picks_the_most_probable_option_and_records_log_probs(world):
    items = read_mcq_tsv(world / "benchmark.tsv")

    class Truthful:   # scores the right option highest, the others by their position
        def __init__(self):
            self.seen = 0   # requests arrive in item order

        def score(self, requests):
            out = []
            for (question, _image, cands) in requests:
                item = items[self.seen]
                self.seen += 1
                assert question == open_question(item) and list(item.options.values()) == cands
                right = item.options[item.answer]
                out.append([0.0 if c == right else -1.0 - k for k, c in enumerate(cands)])
            return out

    preds = evaluate_mcq_by_likelihood(items, Truthful(), chunk_size=4, progress=False)
    assert len(preds) == len(items) and all(p.correct for p in preds)
    assert all("log-probs" in p.prediction for p in preds)

    class Contrary(Truthful):
        def score(self, requests):
            return [[-s for s in row] for row in super().score(requests)]

    preds = evaluate_mcq_by_likelihood(items, Contrary(), chunk_size=2, progress=False)
    assert not any(p.correct for p in preds)


def test_open_question_keeps_hint_and_drops_options():
    item = McqItem("1", 2, "What is shown?", {"A": "cat", "B": "dog"}, "A", hint="A photo.")
    q = open_question(item)
    assert q.startswith("A photo.\nWhat is shown?") and "A. cat" not in q
    assert q.endswith("Answer the question using a single word or phrase.")


def test_cli_scores_both_ways_headline_first(world, tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(tiny_ckpt), "--benchmark", f"world:{world}", "--out", str(out),
               "--batch-size", "4", "--max-new-tokens", "3", "--captions", "off", "--limit", "5",
               "--mcq-scoring", "likelihood,generate", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "scoring likelihood" in printed and "scoring generate" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mcq_scoring"] == "likelihood"
    assert summary["mcq"] == summary["mcq_by_scoring"]["likelihood"]
    assert set(summary["mcq_by_scoring"]) == {"likelihood", "generate"}
    likelihood_rows = [json.loads(line) for line in (out / "mcq_predictions.jsonl").read_text().splitlines()]
    assert len(likelihood_rows) == 5 and all(r["extracted"] in "ABCD" for r in likelihood_rows)
    assert len((out / "mcq_generate_predictions.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("bad", ["bogus", "likelihood,likelihood", ""])
def test_bad_scoring_is_a_clean_error(world, tiny_ckpt, tmp_path, capsys, bad):
    rc = main(["evaluate", "--model", str(tiny_ckpt), "--benchmark", f"world:{world}", "--out", str(tmp_path / "e"),
               "--mcq-scoring", bad, "--no-progress"])
    assert rc == 2
    assert "--mcq-scoring" in capsys.readouterr().err
    assert not (tmp_path / "e" / "summary.json").exists()


def test_shuffled_images_never_keep_their_own_image(world):
    from sicog.eval.mcq import with_shuffled_images

    items = read_mcq_tsv(world / "benchmark.tsv")   # 3 images, 2 questions each
    shuffled = with_shuffled_images(items, seed=0)
    assert [it.question for it in shuffled] == [it.question for it in items]
    assert all(a.image != b.image for a, b in zip(items, shuffled))
    assert sorted(it.image for it in shuffled) == sorted(it.image for it in items)   # a permutation
    assert [it.image for it in with_shuffled_images(items, seed=0)] == [it.image for it in shuffled]
    same = [McqItem(str(i), i + 2, "q", {"A": "x", "B": "y"}, "A", image=items[0].image) for i in range(3)]
    with pytest.raises(Exception, match="at least two different images"):
        with_shuffled_images(same)


def test_cli_shuffled_image_control(world, tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(tiny_ckpt), "--benchmark", f"world:{world}", "--out", str(out),
               "--batch-size", "4", "--captions", "off", "--mcq-scoring", "likelihood",
               "--shuffled-image-control", "--no-progress"])
    assert rc == 0 and "shuffled images" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    blind = summary["mcq_shuffled_images"]
    assert blind["n"] == summary["mcq"]["n"] == 6
    rows = [json.loads(line) for line in (out / "mcq_shuffled_images_predictions.jsonl").read_text().splitlines()]
    real = [json.loads(line) for line in (out / "mcq_predictions.jsonl").read_text().splitlines()]
    # same questions and options; another image changes what a (random) model prefers somewhere
    assert [r["question"] for r in rows] == [r["question"] for r in real]
    assert [r["prediction"] for r in rows] != [r["prediction"] for r in real]


def test_shuffled_control_without_two_images_fails_before_any_model_loads(tmp_path):
    from sicog.eval.cli import evaluate_checkpoint
    from sicog.eval.config import EvaluateConfig
    from sicog.utils.io import SicogError
    from tests.eval._tsv import MMSTAR_COLUMNS, mmstar_rows, write_tsv

    rows = mmstar_rows(3)
    for r in rows:
        r["image"] = rows[0]["image"]   # one image for every question: nothing to swap
    tsv = write_tsv(tmp_path / "one_image.tsv", MMSTAR_COLUMNS, rows)
    with pytest.raises(SicogError, match="at least two different images"):
        evaluate_checkpoint(EvaluateConfig(model=str(tmp_path / "no-such-checkpoint"), benchmark=str(tsv),
                                           out=str(tmp_path / "out"), mcq_scoring="likelihood",
                                           shuffled_image_control=True, progress=False))
    assert not (tmp_path / "out").exists()
