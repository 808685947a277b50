"""scripts/gpu_check.sh (benchmarks/gpu_check.py), the first GPU run: every step at tiny shapes on CPU
(--cpu-smoke), a failing step named in the table and the exit, the steps after a failure, a command in
its own process (the GPU default), and the reading of sicog's per-step throughput line (MFU: GPU only)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_check.sh"
_SPEC = importlib.util.spec_from_file_location("gpu_check_steps", REPO / "benchmarks" / "gpu_check_steps.py")
steps = sys.modules.setdefault("gpu_check_steps", importlib.util.module_from_spec(_SPEC))  # (its dataclasses)
_SPEC.loader.exec_module(steps)

ORDER = ["env", "build-llava", "train-llava-padded", "train-llava-packed", "train-deepspeed", "sample-llava",
         "evaluate-llava", "dpo-llava", "build-uhd", "train-uhd", "train-uhd-packed", "sample-uhd"]


def _check(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env)


def _rows(table: str) -> dict[str, list[str]]:
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return {c[0]: c[1:] for c in cells}


@pytest.mark.slow
def test_cpu_smoke_runs_every_step_and_prints_the_table(tmp_path):
    if importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed (the train-deepspeed step needs it)")
    out = tmp_path / "check"
    # every step at its smallest telling size (a step's first training step is left out of its rates)
    proc = _check("--cpu-smoke", "--out", str(out), "--candidates", "16", "--questions", "10", "--dpo-steps", "3")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    table = (out / "table.md").read_text()
    assert table in proc.stdout
    assert list(_rows(table)) == ORDER and {r[0] for r in _rows(table).values()} == {"ok"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] == [] and summary["mode"] == "cpu-smoke"
    by = {s["name"]: s["details"] for s in summary["steps"]}
    for name in ("train-llava-padded", "train-llava-packed", "train-deepspeed", "train-uhd", "train-uhd-packed",
                 "dpo-llava"):
        assert by[name]["steady_tokens_per_s"] > 0 and by[name]["steady_steps"] >= 2, name
        assert by[name]["peak_mem_gb"] > 0, name
    assert by["train-llava-packed"]["train_summary"]["padding_share"] == 0.0
    assert by["dpo-llava"]["train_summary"]["steps"] == 3
    assert by["sample-llava"]["candidates"] == by["sample-uhd"]["candidates"] == 16
    assert json.loads((out / "evaluate-llava" / "eval" / "summary.json").read_text())["mcq"]["n"] == 10
    assert set(by["evaluate-llava"]["accuracy"]) == {"likelihood", "generate"}
    assert not list(out.rglob("*.safetensors"))  # every checkpoint deleted once read
    again = _check("--cpu-smoke", "--out", str(out))  # a finished check is never overwritten unasked
    assert again.returncode == 2 and "--overwrite" in again.stderr


@pytest.mark.slow
def test_a_failing_step_is_named_in_the_table_and_the_exit(tmp_path):
    out = tmp_path / "check"
    proc = _check("--cpu-smoke", "--only", "train-deepspeed", "--deepspeed-config", str(tmp_path / "missing.json"),
                  "--out", str(out))
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("gpu_check: FAILED: train-deepspeed ")
    rows = _rows((out / "table.md").read_text())
    assert list(rows) == ["env", "build-llava", "train-deepspeed"] and rows["build-llava"][0] == "ok"
    assert rows["train-deepspeed"][0] == "FAILED" and "training.deepspeed: file not found" in rows["train-deepspeed"][2]
    assert json.loads((out / "summary.json").read_text())["failed"] == ["train-deepspeed"]


def test_a_command_in_its_own_process(tmp_path):
    """--launch process (the GPU default; the smoke run uses the same child-process code for torchrun):
    a failing command's own error message is the step's reason."""
    c = steps.Check(SimpleNamespace(launch="process", step_timeout=300.0), steps.SMOKE, tmp_path)
    with pytest.raises(steps.StepFailed, match=r"exit 2: .*missing\.yaml: config file not found \(see "):
        steps.run_sicog(c, tmp_path, ["train", str(tmp_path / "missing.yaml")])


def test_steady_rates_read_sicog_throughput_lines(tmp_path, monkeypatch, caplog):
    """The figures come from the line sicog.stages.throughput logs every step, MFU (GPU only) included."""
    from sicog.stages import throughput

    monkeypatch.setattr(throughput, "device_peak_flops", lambda: 1e12)  # as on a known GPU
    meter = SimpleNamespace(totals=dict.fromkeys(throughput.COUNTS, 0.0))
    callback = throughput.ThroughputCallback(meter, "stage")
    args = SimpleNamespace(device="cpu", world_size=1)
    state = SimpleNamespace(global_step=0, max_steps=3, is_world_process_zero=True)
    callback.on_train_begin(args, state, None)
    with caplog.at_level(logging.INFO, logger="sicog.stages.trainer"):
        for step in (1, 2, 3):
            for key, value in (("samples", 4), ("tokens", 1000), ("slots", 1200), ("flops", 1e9)):
                meter.totals[key] += value
            state.global_step = step
            callback.on_log(args, state, None, logs={"loss": 1.0, "learning_rate": 1e-5})
    log = tmp_path / "log.txt"
    log.write_text("\n".join(r.getMessage() for r in caplog.records) + "\n")
    rates = steps.steady_rates(log)
    assert rates["steady_steps"] == 2  # the first step is left out
    assert rates["steady_tokens_per_s"] > 0 and rates["steady_tflops_per_s"] > 0 and 0 < rates["steady_mfu"]


def test_a_step_after_a_failure_still_runs_and_one_that_needs_it_is_skipped(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)

    def fail(c, d):
        raise steps.StepFailed("exit 2: broken (see b/log.txt)")

    monkeypatch.setattr(gpu_check.steps, "STEPS", {"a": (lambda c, d: {"figure": "fine"}, ()), "b": (fail, ("a",)),
                                                   "c": (lambda c, d: {"figure": "x"}, ("b",)),
                                                   "d": (lambda c, d: {"figure": "also fine"}, ("a",))})
    assert gpu_check.selected("c") == ["a", "b", "c"]
    c = steps.Check(SimpleNamespace(keep_checkpoints=False, step_timeout=1.0), steps.SMOKE, tmp_path)
    rows = _rows(gpu_check.render_table(gpu_check.run_check(c, gpu_check.selected(None))))
    assert rows["a"][:1] + rows["d"][:1] == ["ok", "ok"]
    assert rows["b"] == ["FAILED", rows["b"][1], "exit 2: broken (see b/log.txt)"]
    assert rows["c"] == ["skipped", "-", "needs b"]
