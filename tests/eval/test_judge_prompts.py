"""The judged benchmarks' prompts come from VLMEvalKit or a file, never from sicog itself."""

from __future__ import annotations

import builtins
import json

import pytest

from sicog.eval.scores import judge_prompts
from sicog.utils.io import SicogError


def test_a_prompts_file_is_read_and_checked(tmp_path, monkeypatch):
    good = tmp_path / "p.json"
    good.write_text(json.dumps({"mmvet_prefix": "grade:\n", "mathvista_prefix": "extract:\n"}))
    monkeypatch.setenv(judge_prompts.ENV, str(good))
    judge_prompts._load.cache_clear()
    assert judge_prompts.judge_prompts() == {"mmvet_prefix": "grade:\n", "mathvista_prefix": "extract:\n"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mmvet_prefix": "grade:\n"}))
    monkeypatch.setenv(judge_prompts.ENV, str(bad))
    with pytest.raises(SicogError, match=r"bad.json: key mathvista_prefix is missing"):
        judge_prompts.judge_prompts()


def test_without_vlmevalkit_or_a_file_the_error_says_how_to_get_them(monkeypatch):
    monkeypatch.delenv(judge_prompts.ENV, raising=False)
    judge_prompts._load.cache_clear()
    real_import = builtins.__import__

    def no_vlmeval(name, *args, **kwargs):
        if name.startswith("vlmeval") or name == "sicog.eval.vlmeval_import":
            raise ImportError(f"no module named {name}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vlmeval)
    with pytest.raises(SicogError, match=r"install it \(pip install 'sicog\[vlmeval\]'.*SICOG_JUDGE_PROMPTS"):
        judge_prompts.judge_prompts()


def test_the_prefix_is_what_the_builder_puts_before_the_item():
    tail = judge_prompts.mmvet_tail("Q", "A", "P")
    assert judge_prompts._prefix("PROMPT" + tail, tail, "MM-Vet grader") == "PROMPT"
    with pytest.raises(SicogError, match="no longer ends with the item's own text"):
        judge_prompts._prefix("PROMPT", tail, "MM-Vet grader")
