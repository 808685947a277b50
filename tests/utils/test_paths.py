"""check_outputs_apart: an output may not be, contain or lie inside an input (symlinks followed)."""

import os

import pytest

from sicog.utils.io import SicogError
from sicog.utils.paths import check_outputs_apart


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "data.jsonl").write_text("{}\n")
    return tmp_path


@pytest.mark.parametrize("out, how, key", [
    ("ckpt", "is", "model.checkpoint"),
    ("ckpt/sub/deeper", "is inside", "model.checkpoint"),
    (".", "contains", "model.checkpoint"),
    ("data.jsonl", "is", "data"),
])
def test_overlap_is_refused_naming_both(tree, out, how, key):
    inputs = {"model.checkpoint": tree / "ckpt", "data": str(tree / "data.jsonl")}
    with pytest.raises(SicogError) as e:
        check_outputs_apart({"training.output_dir": tree / out}, inputs)
    msg = str(e.value)
    assert msg.startswith(f"training.output_dir ({tree / out}") and f") {how} {key} (" in msg
    assert str(inputs[key]) in msg


def test_apart_paths_and_unset_values_pass(tree):
    check_outputs_apart({"out": tree / "runs" / "x", "unset": None, "empty": ""},
                        {"model.checkpoint": tree / "ckpt", "data": tree / "data.jsonl", "none": None})
    # a sibling whose name starts like the input is not inside it
    check_outputs_apart({"out": tree / "ckpt2"}, {"model.checkpoint": tree / "ckpt"})


def test_symlinks_are_resolved(tree):
    os.symlink(tree / "ckpt", tree / "link")
    with pytest.raises(SicogError, match=r"out \(.*link/final -> .*ckpt/final\) is inside model\.checkpoint"):
        check_outputs_apart({"out": tree / "link" / "final"}, {"model.checkpoint": tree / "ckpt"})
    with pytest.raises(SicogError, match=r"out \(.*/ckpt\) is model\.checkpoint \(.*link -> .*ckpt\)"):
        check_outputs_apart({"out": tree / "ckpt"}, {"model.checkpoint": tree / "link"})


def test_relative_paths_are_taken_from_the_working_directory(tree, monkeypatch):
    monkeypatch.chdir(tree)
    with pytest.raises(SicogError, match=r"out \(ckpt/x -> .*ckpt/x\) is inside model\.checkpoint \(ckpt -> "):
        check_outputs_apart({"out": "ckpt/x"}, {"model.checkpoint": "ckpt"})
