"""recap_scripts/*.sh: env vars become `sicog sample` flags that the real parser accepts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sicog.cli import build_parser
from tests.stages._sampling import REPO
from tests.stages._scripts import run_from_copy

SCRIPTS = REPO / "recap_scripts"
BASE_ENV = {"EXPERIMENT_NAME": "exp1", "MODEL_PATH": "ckpt/warm", "DATA_PATH": "data/x.jsonl",
            "IMAGE_FOLDER": "data/images"}


def _run(tmp_path: Path, script: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run a script with PYTHON pointing at a stub that records its argv (one per line)."""
    stub = tmp_path / "python-stub"
    record = tmp_path / "argv.txt"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    stub.chmod(0o755)
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHON": str(stub),
            "OUTPUT_ROOT": str(tmp_path / "out"), **env}
    res = subprocess.run(["bash", str(SCRIPTS / script)], env=full, capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    argv = record.read_text().splitlines() if record.exists() else []
    return res, argv


def _sample_args(argv: list[str]):
    i = argv.index("sicog.pipeline.launch")
    args = argv[i + 1:]
    return build_parser("sample").parse_args(args)


@pytest.mark.parametrize("script", ["caption_inference.sh", "reasoning_inference.sh", "common.sh"])
def test_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(SCRIPTS / script)]).returncode == 0


def test_caption_script_maps_env_to_flags(tmp_path):
    res, argv = _run(tmp_path, "caption_inference.sh", **BASE_ENV, TEMPERATURE="1.0", TOP_P="0.8",
                     BEAMS="1", NUM_CANDIDATES="5", SPLIT="part3", AUGMENT_METHODS="none mask")
    assert res.returncode == 0, res.stderr
    assert argv[:2] == ["-m", "sicog.pipeline.launch"]
    a = _sample_args(argv)
    assert (a.mode, a.n, a.temperature, a.top_p, a.num_beams) == ("cod", 5, 1.0, 0.8, 1)
    assert (a.model, a.data, a.image_folder) == ("ckpt/warm", "data/x.jsonl", "data/images")
    assert a.corruption == "none,mask"
    assert a.out == str(tmp_path / "out" / "exp1" / "part3_cod-default_none-mask.jsonl")
    res, argv = _run(tmp_path, "caption_inference.sh", **BASE_ENV, PROMPT="default")
    assert _sample_args(argv).mode == "caption" and _sample_args(argv).corruption is None


def test_reasoning_script_under_torchrun_and_openai(tmp_path):
    res, argv = _run(tmp_path, "reasoning_inference.sh", **BASE_ENV, NPROC_PER_NODE="4",
                     BACKEND="openai", API_BASE="http://127.0.0.1:8000/v1", API_KEY_ENV="MY_KEY")
    assert res.returncode == 0, res.stderr
    # the script hands NPROC_PER_NODE to the one launch module, which builds the torchrun line
    # (tests/pipeline/test_launch.py)
    assert argv[:2] == ["-m", "sicog.pipeline.launch"]
    a = _sample_args(argv)
    assert (a.mode, a.n, a.backend, a.api_base, a.api_key_env) == (
        "cot", 6, "openai", "http://127.0.0.1:8000/v1", "MY_KEY")
    res, argv = _run(tmp_path, "reasoning_inference.sh", **BASE_ENV, PROMPT="default")
    assert _sample_args(argv).mode == "direct"


@pytest.mark.parametrize("missing", sorted(BASE_ENV))
def test_required_variables_are_named(tmp_path, missing):
    env = {k: v for k, v in BASE_ENV.items() if k != missing}
    res, argv = _run(tmp_path, "caption_inference.sh", **env)
    assert res.returncode != 0 and missing in res.stderr and argv == []


def test_unknown_prompt_is_refused(tmp_path):
    res, argv = _run(tmp_path, "caption_inference.sh", **BASE_ENV, PROMPT="cot-default")
    assert res.returncode == 2 and "PROMPT must be" in res.stderr and argv == []


@pytest.mark.parametrize("venv", [True, False])
def test_the_scripts_use_the_projects_venv_when_present(tmp_path, venv):
    res, interpreter, argv = run_from_copy(tmp_path, "recap_scripts/caption_inference.sh", BASE_ENV, venv)
    assert res.returncode == 0, res.stderr
    assert interpreter == ("venv" if venv else "path") and argv[:2] == ["-m", "sicog.pipeline.launch"]
