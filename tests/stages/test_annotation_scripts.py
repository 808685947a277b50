"""training_data_annotation/*.sh: environment variables become sicog flags; a missing one fails fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.stages._annotation import write_caption_records
from tests.stages._scripts import run_from_copy

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "training_data_annotation"


def _run(script: str, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "PYTHON": sys.executable, "PYTHONPATH": str(REPO), **env}
    return subprocess.run(["bash", str(SCRIPTS / script)], env=full, capture_output=True, text=True, timeout=120)


def test_annotate_cod_fails_fast_and_dry_runs(tmp_path):
    data, folder = write_caption_records(tmp_path, 3)
    res = _run("annotate_cod.sh", IMAGE_FOLDER=str(folder), OUTPUT_DIR=str(tmp_path / "out"))
    assert res.returncode != 0 and "set DATA_PATH" in res.stderr
    res = _run("annotate_cod.sh", DATA_PATH=str(data), IMAGE_FOLDER=str(folder), OUTPUT_DIR=str(tmp_path / "out"))
    assert res.returncode == 2 and "set OPENAI_API_KEY" in res.stderr  # the default endpoint needs a key
    res = _run("annotate_cod.sh", DATA_PATH=str(data), IMAGE_FOLDER=str(folder), OUTPUT_DIR=str(tmp_path / "out"),
               DRY_RUN="1", MAX_TOKENS="10")
    assert res.returncode == 0, res.stderr
    assert "3 request(s) for 3 item(s)" in res.stdout and "at most 30 output tokens" in res.stdout


def test_convert_cot_writes_both_files(tmp_path):
    src = tmp_path / "in" / "cot.jsonl"
    src.parent.mkdir()
    src.write_text(json.dumps({"id": "a", "image": "a.jpg", "conversations": [
        {"from": "human", "value": "<image>\nQ?"},
        {"from": "gpt", "value": "<SUMMARY>s</SUMMARY><CAPTION>c</CAPTION><REASONING>r</REASONING>"
                                 "<CONCLUSION>x</CONCLUSION>"}]}) + "\n")
    assert "set DATA_PATH" in _run("convert_cot.sh", OUTPUT_DIR=str(tmp_path / "out")).stderr
    res = _run("convert_cot.sh", DATA_PATH=str(src), OUTPUT_DIR=str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    short = json.loads((tmp_path / "out" / "short_answers.jsonl").read_text())
    assert short["conversations"][1]["value"] == "x"
    assert (tmp_path / "out" / "structured_cot.jsonl").is_file()


@pytest.mark.parametrize("venv", [True, False])
def test_the_wrappers_use_the_projects_venv_when_present(tmp_path, venv):
    env = {"DATA_PATH": "in/captions.jsonl", "IMAGE_FOLDER": "in", "OUTPUT_DIR": "out", "DRY_RUN": "1"}
    res, interpreter, argv = run_from_copy(tmp_path, "training_data_annotation/annotate_cod.sh", env, venv)
    assert res.returncode == 0, res.stderr
    assert interpreter == ("venv" if venv else "path") and argv[:3] == ["-m", "sicog", "annotate"]
    res, interpreter, argv = run_from_copy(tmp_path, "training_data_annotation/convert_cot.sh",
                                           {"DATA_PATH": "cot.jsonl", "OUTPUT_DIR": "out"}, venv)
    assert res.returncode == 0, res.stderr
    assert interpreter == ("venv" if venv else "path") and argv[:3] == ["-m", "sicog", "convert"]
