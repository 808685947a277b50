"""Fixtures of the eval tests."""

from __future__ import annotations

import json

import pytest

from sicog.eval.scores import judge_prompts


@pytest.fixture(autouse=True)
def test_judge_prompts(tmp_path_factory, monkeypatch):
    """Judge prompts of our own for the judged scorers (the real ones are read from VLMEvalKit, which
    the suite does not install): the loopback judge (tests/eval/_judge_server.py) tells an MM-Vet
    grading from its opening words and a MathVista extraction from its closing ones."""
    path = tmp_path_factory.getbasetemp() / "judge_prompts.json"
    if not path.exists():
        path.write_text(json.dumps({
            "mmvet_prefix": "\nCompare the ground truth and prediction below and grade the prediction from "
                            "0.0 (wrong) to 1.0 (right).\nQuestion | Ground truth | Prediction | Correctness\n",
            "mathvista_prefix": "\nCopy the final answer of the model response below, nothing else.\n\n"}))
    monkeypatch.setenv(judge_prompts.ENV, str(path))
    judge_prompts._load.cache_clear()
    yield
    judge_prompts._load.cache_clear()
