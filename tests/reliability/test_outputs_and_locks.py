"""Outputs of one command apart from each other, from their own summary and lock files, and
from the inputs (symlinks followed); summaries written last; one lock per resolved output, taken
by every writing command (`pairs` on both outputs, `train` / `dpo` on output_dir).

Each case fails cleanly (tests/reliability/_harness.py): exit 2, the place named, nothing written,
inputs unchanged. In-process: every check runs before any model is built.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sicog.cli import main as sicog_main
from sicog.utils.lock import output_lock
from tests.stages.conftest import dpo_config, write_tiny_dataset, write_tiny_pairs

from ._harness import snapshot


def _curated(i: int) -> dict:
    return {"id": f"q{i}", "image": f"images/{i}.png", "mode": "cot", "rejected": f"Wrong {i}. The answer is B.",
            "conversations": [{"from": "human", "value": f"<image>\nQuestion {i}?"},
                              {"from": "gpt", "value": f"Right {i}. The answer is A."}]}


@pytest.fixture
def tmp(tmp_path) -> Path:
    (tmp_path / "curated.jsonl").write_text("".join(json.dumps(_curated(i)) + "\n" for i in range(20)))
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    return tmp_path


PAIRS = ["pairs", "--curated", "{tmp}/curated.jsonl", "--heldout-fraction", "0.25"]

# name: (argv after PAIRS, a lock held while it runs (relative to tmp) or None, the error, outputs)
CASES = {
    "out_is_heldout_out": (["--out", "{tmp}/p.jsonl", "--heldout-out", "{tmp}/p.jsonl"], None,
                           r"--heldout-out \(.*p\.jsonl\) is --out \(.*p\.jsonl\): two outputs", ["p.jsonl"]),
    "heldout_out_through_a_link_is_out": (["--out", "{tmp}/real/p.jsonl", "--heldout-out", "{tmp}/link/p.jsonl"],
                                          None, r"--heldout-out \(.*link/p\.jsonl -> .*real/p\.jsonl\) is --out",
                                          ["real/p.jsonl"]),
    "heldout_out_is_the_summary": (["--out", "{tmp}/p.jsonl", "--heldout-out", "{tmp}/p.jsonl.summary.json"], None,
                                   r"--heldout-out .* is --out \(its summary\)", ["p.jsonl", "p.jsonl.summary.json"]),
    "heldout_out_is_the_lock": (["--out", "{tmp}/p.jsonl", "--heldout-out", "{tmp}/p.jsonl.lock"], None,
                                r"--heldout-out \(.*p\.jsonl\.lock\) is the lock file of --out", ["p.jsonl"]),
    "heldout_out_inside_out": (["--out", "{tmp}/p", "--heldout-out", "{tmp}/p/h.jsonl"], None,
                               r"--heldout-out \(.*p/h\.jsonl\) is inside --out", ["p"]),
    "out_locked_through_a_symlink": (["--out", "{tmp}/link/p.jsonl", "--heldout-out", "{tmp}/h.jsonl"],
                                     "real/p.jsonl", r"is being written by pid \d+ \(lock .*real/p\.jsonl\.lock\)",
                                     ["h.jsonl", "real/p.jsonl"]),
    "heldout_out_locked": (["--out", "{tmp}/p.jsonl", "--heldout-out", "{tmp}/h.jsonl"], "h.jsonl",
                           r"h\.jsonl is being written by pid \d+", ["p.jsonl", "p.jsonl.summary.json"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_pairs_outputs_apart_and_locked(tmp, capsys, case):
    argv, held, place, outputs = CASES[case]
    before = snapshot(tmp)
    args = [a.replace("{tmp}", str(tmp)) for a in PAIRS + argv]
    if held:
        with output_lock(tmp / held):
            rc = sicog_main(args)
    else:
        rc = sicog_main(args)
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    assert "Traceback" not in err
    assert re.search(place, err), err[-2000:]
    for out in outputs:
        assert not (tmp / out).exists(), f"{out} left behind"
    assert {k: v for k, v in snapshot(tmp).items() if k in before} == before


def test_pairs_summary_comes_last(tmp, capsys, monkeypatch):
    """A run killed after the summary but before the pairs must not leave the old pairs 'up to date'."""
    import sicog.stages.pairs as stage

    args = PAIRS + ["--out", f"{tmp}/p.jsonl", "--heldout-out", f"{tmp}/h.jsonl"]
    args = [a.replace("{tmp}", str(tmp)) for a in args]
    assert sicog_main(args) == 0
    real = stage.write_jsonl

    def dies_on_out(path, records):
        if str(path).endswith("p.jsonl"):
            raise KeyboardInterrupt  # as a kill between the two writes
        return real(path, records)

    monkeypatch.setattr(stage, "write_jsonl", dies_on_out)
    assert sicog_main(args + ["--seed", "3", "--overwrite"]) != 0
    monkeypatch.setattr(stage, "write_jsonl", real)
    capsys.readouterr()
    sicog_main(args + ["--seed", "3"])  # not "up to date": the old pairs were made with seed 0
    assert "up to date" not in capsys.readouterr().err


def _dpo(tmp_path: Path, **dpo) -> Path:
    pairs = write_tiny_pairs(tmp_path / "data", write_tiny_dataset(tmp_path / "data", n=12))
    return dpo_config(tmp_path, pairs, "out", dpo=dpo or None)


DPO_CASES = {
    "heldout_is_the_training_file": (lambda t: {"heldout": str(t / "data" / "pairs.jsonl")}, None,
                                     r"dpo\.heldout \(.*pairs\.jsonl\) is data\.sources\[0\]\.path"),
    "output_dir_being_written": (lambda t: {}, "out", r"out is being written by pid \d+ \(lock .*out\.lock\)"),
    "output_dir_locked_through_a_symlink": (lambda t: {}, "real_out", r"is being written by pid \d+"),
}


@pytest.mark.parametrize("case", sorted(DPO_CASES))
def test_dpo_output_dir_claimed(tmp_path, capsys, case):
    dpo, held, place = DPO_CASES[case]
    config = _dpo(tmp_path, **dpo(tmp_path))
    if held == "real_out":  # output_dir is a symlink to a folder another run is writing
        (tmp_path / "real_out").mkdir()
        os.symlink(tmp_path / "real_out", tmp_path / "out")
    before = snapshot(tmp_path)
    if held:
        with output_lock(tmp_path / held):
            rc = sicog_main(["dpo", str(config)])
    else:
        rc = sicog_main(["dpo", str(config)])
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    assert "Traceback" not in err and re.search(place, err), err[-2000:]
    assert not (tmp_path / "out" / "final").exists()
    assert snapshot(tmp_path) == before


def test_train_takes_the_output_dir_lock(tmp_path, capsys):
    from tests.stages.conftest import stage_config

    data = write_tiny_dataset(tmp_path / "data", n=8)
    config = stage_config(tmp_path, data, "out")
    with output_lock(tmp_path / "out"):
        rc = sicog_main(["train", str(config)])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(r"out is being written by pid \d+", err), err[-2000:]
    assert not (tmp_path / "out").exists()
