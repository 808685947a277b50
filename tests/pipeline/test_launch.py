"""The one launch line: `sicog run` steps and the bash scripts build it from the same defaults."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sicog.pipeline.config import LauncherConfig
from sicog.pipeline.launch import _run_sicog_module, command_argv, describe_command, launcher_from_env

ROOT = Path(__file__).resolve().parents[2]


def test_env_launcher_defaults_are_the_pipeline_defaults():
    assert launcher_from_env({}) == LauncherConfig()
    got = launcher_from_env({"NPROC_PER_NODE": "8", "NNODES": "4", "NODE_RANK": "2", "MASTER_ADDR": "10.0.0.1",
                             "MASTER_PORT": "1234"})
    assert describe_command(got, ["train", "x.yaml"]) == (
        "torchrun --nproc_per_node=8 --nnodes=4 --node_rank=2 --master_addr=10.0.0.1 --master_port=1234 "
        "-m sicog train x.yaml")
    with pytest.raises(SystemExit, match="NPROC_PER_NODE"):
        launcher_from_env({"NPROC_PER_NODE": "two"})


def test_bash_scripts_launch_through_the_one_launch_module():
    """common.sh's sicog_launch runs `python -m sicog.pipeline.launch ARGS` (PYTHON=echo shows it)."""
    out = subprocess.run(["bash", "-c", "source training_scripts/common.sh && sicog_launch train x.yaml"],
                         cwd=ROOT, env={**os.environ, "PYTHON": "echo"}, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["-m", "sicog.pipeline.launch", "train", "x.yaml"]
    for script in ("training_scripts", "recap_scripts", "quality_evaluation"):
        code = [ln for ln in (ROOT / script / "common.sh").read_text().splitlines() if not ln.lstrip().startswith("#")]
        assert not [ln for ln in code if "torchrun" in ln or "torch.distributed.run" in ln], script
        assert not [ln for ln in code if "MASTER_PORT:-" in ln], f"{script}/common.sh sets its own launch default"


def test_launch_module_prints_the_line_and_runs_it(tmp_path):
    env = {**os.environ, "NPROC_PER_NODE": "1"}
    out = subprocess.run([os.sys.executable, "-m", "sicog.pipeline.launch", "world", "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "sicog world --help" in out.stderr and "--out" in out.stdout
    assert command_argv(LauncherConfig(), ["x"])[1:] == ["-m", "sicog", "x"]


def test_in_process_run_returns_the_exit_status(capsys):
    assert _run_sicog_module(["world", "--help"]) == 0
    assert _run_sicog_module(["evaluate", "--model", "nowhere", "--benchmark", "nowhere.tsv"]) == 2
