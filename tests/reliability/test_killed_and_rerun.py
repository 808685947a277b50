"""SIGKILL in mid-run, then the same command again: the outputs are byte for byte those of a run
that was never interrupted (convert, annotate, evaluate, dpo, train), and no temp file is left.

Table-driven: each case writes its inputs into a folder and gives its argv, the file whose
appearance means the run is under way (then it is killed), and the outputs compared. The run
that is killed is a subprocess (a real SIGKILL, nothing of it runs after); the uninterrupted run
and the rerun are in-process (`sicog.cli.main`), in two folders with identical inputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from sicog.cli import main as sicog_main
from tests.eval._tsv import MMSTAR_COLUMNS, mmstar_rows, write_tsv
from tests.stages._annotation import annotate_argv, write_caption_records
from tests.stages._cod_server import CodServer
from tests.stages.conftest import dpo_config, stage_config, write_tiny_dataset, write_tiny_pairs

from ._harness import ROOT


@dataclass
class Killable:
    setup: Callable[..., list]  # (folder, context) -> argv after `sicog`
    under_way: str  # a glob (relative to the folder): once it matches, the run is killed
    outputs: list[str]  # compared byte for byte with the uninterrupted run's


_TAGGED = "<SUMMARY>s</SUMMARY><CAPTION>c{}</CAPTION><REASONING>r</REASONING><CONCLUSION>A</CONCLUSION>"


def _convert(d: Path, ctx) -> list:
    recs = ({"id": f"r{i % 9000}", "image": f"img/{i}.png", "conversations": [  # ids repeat: made unique
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": _TAGGED.format(i)}]}
        for i in range(40000))
    (d / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return ["convert", "llava-cot", "--data", d / "data.jsonl", "--out-cot", d / "out" / "cot.jsonl",
            "--out-short", d / "out" / "short.jsonl", "--no-progress"]


def _annotate(d: Path, ctx) -> list:
    data, folder = write_caption_records(d, 24)
    return [*annotate_argv(data, folder, d / "out", ctx["server"].base_url, "--concurrency", "2",
                           "--request-timeout", "5")]


def _evaluate(d: Path, ctx) -> list:
    (d / "bench").mkdir()
    write_tsv(d / "bench" / "bench.tsv", MMSTAR_COLUMNS, mmstar_rows(12))
    return ["evaluate", "--model", ctx["ckpt"], "--benchmark", d / "bench" / "bench.tsv", "--out", d / "eval",
            "--batch-size", "2", "--max-new-tokens", "3", "--captions", "off", "--no-progress"]


def _train(d: Path, ctx) -> list:
    return ["train", stage_config(d, write_tiny_dataset(d / "data", n=8), "run", max_steps=6, save_steps=2,
                                  logging_steps=2)]


def _dpo(d: Path, ctx) -> list:
    pairs = write_tiny_pairs(d / "data", write_tiny_dataset(d / "data", n=8), n=4)
    return ["dpo", dpo_config(d, pairs, "run", max_steps=6, save_steps=2, logging_steps=2, dpo={"heldout": None})]


CASES = {
    "convert": Killable(_convert, "out/.cot.jsonl.*.tmp", ["out/cot.jsonl", "out/short.jsonl"]),
    "annotate": Killable(_annotate, "out/journal.parts/rank-0.jsonl", ["out/cod.jsonl", "out/dd.jsonl"]),
    "evaluate": Killable(_evaluate, "eval/.partial/generate.jsonl", ["eval/mcq_predictions.jsonl",
                                                                     "eval/mcq_result.csv"]),
    "train": Killable(_train, "run/checkpoint-2/trainer_state.json", ["run/final/model.safetensors"]),
    "dpo": Killable(_dpo, "run/checkpoint-2/trainer_state.json", ["run/final/model.safetensors"]),
}


def _kill_when(argv: list[str], folder: Path, under_way: str, timeout: float = 120) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sicog", *argv], cwd=folder, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not list(folder.glob(under_way)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    err = proc.communicate()[1].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"the run ended (exit {proc.returncode}) before it was killed:\n{err[-2000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_then_rerun_gives_the_uninterrupted_outputs(tmp_path, tiny_ckpt, capsys, case):
    c = CASES[case]
    with CodServer(delay=0.05) as server:
        ctx = {"server": server, "ckpt": tiny_ckpt}
        whole, killed = tmp_path / "whole", tmp_path / "killed"
        whole.mkdir()
        killed.mkdir()
        argv = [str(a) for a in c.setup(whole, ctx)]
        assert sicog_main(argv) == 0, capsys.readouterr().err[-2000:]
        argv = [str(a) for a in c.setup(killed, ctx)]
        _kill_when(argv, killed, c.under_way)
        assert not all((killed / out).exists() for out in c.outputs), "killed after the outputs were written"
        assert sicog_main(argv) == 0, capsys.readouterr().err[-2000:]
    for out in c.outputs:
        assert (killed / out).read_bytes() == (whole / out).read_bytes(), f"{out} differs after the kill"
    assert not [p for p in killed.rglob(".*.tmp")], "temp files left"
