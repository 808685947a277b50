"""`launcher.env` / `launchers.*.env` of `sicog run`: `${VAR}` expanded for the command only, never saved.

The step's command is replaced by a tiny script that shows what environment it got (the key, and the
key reversed: proof that it arrived without printing it) and fails, so that no model is trained.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sicog.config import ConfigError
from sicog.pipeline import launch
from sicog.pipeline.cli import load_pipeline, run_pipeline
from sicog.pipeline.config import LauncherConfig, launcher_env
from sicog.pipeline.step import StepFailed
from sicog.utils import secrets

from .test_plan import PRESETS, _fake_world

VALUE = "sk-pipeline-0123456789abcdef"
SHOW_ENV = ("import os, sys; k = os.environ['OPENAI_API_KEY']; print('key:', k); "
            "print('reversed:', k[::-1]); print('other:', os.environ.get('SICOG_TEST_OTHER')); sys.exit(3)")


@pytest.fixture(autouse=True)
def _no_registered_secrets(monkeypatch):
    monkeypatch.setattr(secrets, "_registered", set())


def _config(tmp_path: Path, *sets: str):
    world = _fake_world(tmp_path)
    models = {}
    for name in ("vision_tower", "language_model"):
        models[name] = tmp_path / "models" / name
        models[name].mkdir(parents=True)
    return load_pipeline(str(PRESETS / "smoke.yaml"), [
        f"work_dir={tmp_path / 'run'}", f"data.world={world}", f"models.vision_tower={models['vision_tower']}",
        f"models.language_model={models['language_model']}", "mixture.text_only_ratio=0", *sets])


def _all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file())


def test_launcher_env_is_expanded_only_for_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", VALUE)  # not a secret-looking name: the key it fills is
    monkeypatch.setattr(launch, "command_argv", lambda launcher, argv: [sys.executable, "-c", SHOW_ENV])
    cfg = _config(tmp_path, 'launcher.env={OPENAI_API_KEY: "${MY_KEY}", SICOG_TEST_OTHER: "${NOT_SET_HERE:-plain}"}',
                  "launcher.in_process=false")
    with pytest.raises(StepFailed) as failed:
        run_pipeline(cfg, echo=lambda msg: None, write_report=False, config_dir=PRESETS)
    run = tmp_path / "run"
    log = (run / "align" / "log.txt").read_text()
    assert f"reversed: {VALUE[::-1]}" in log  # the command got the value ...
    assert "key: ***" in log and "other: plain" in log  # ... and its log shows it redacted
    assert VALUE not in str(failed.value)  # the error quotes the log's tail
    saved = (run / "pipeline.yaml").read_text()
    assert "${MY_KEY}" in saved
    manifest = json.loads((run / "manifests" / "align.json").read_text())
    assert manifest["status"] == "pending" and manifest["params"]["train"]["stage"] == "stage1_align"
    assert VALUE not in _all_text(run)  # pipeline.yaml, manifests, train.yaml, logs


def test_per_kind_launcher_env_in_process(tmp_path, monkeypatch):
    """launchers.train.env, in process: os.environ holds the value during the step only."""
    monkeypatch.setenv("MY_KEY", VALUE)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    seen = {}

    def fake_module(argv):
        seen["key"] = __import__("os").environ.get("OPENAI_API_KEY")
        print(f"the key is {seen['key']}")
        return 3

    monkeypatch.setattr(launch, "_run_sicog_module", fake_module)
    cfg = _config(tmp_path, 'launchers.train={in_process: true, env: {OPENAI_API_KEY: "${MY_KEY}"}}')
    with pytest.raises(StepFailed):
        run_pipeline(cfg, echo=lambda msg: None, write_report=False, config_dir=PRESETS)
    assert seen["key"] == VALUE and "OPENAI_API_KEY" not in __import__("os").environ
    run = tmp_path / "run"
    assert "the key is ***" in (run / "align" / "log.txt").read_text()
    assert "${MY_KEY}" in (run / "pipeline.yaml").read_text()
    assert VALUE not in _all_text(run)


def test_a_literal_secret_is_masked_in_pipeline_yaml(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "command_argv", lambda launcher, argv: [sys.executable, "-c", SHOW_ENV])
    cfg = _config(tmp_path, f"launcher.env={{OPENAI_API_KEY: {VALUE}}}", "launcher.in_process=false")
    assert launcher_env(cfg.launcher) == {"OPENAI_API_KEY": VALUE}
    with pytest.raises(StepFailed):
        run_pipeline(cfg, echo=lambda msg: None, write_report=False, config_dir=PRESETS)
    run = tmp_path / "run"
    assert "OPENAI_API_KEY: '***'" in (run / "pipeline.yaml").read_text()
    assert VALUE not in _all_text(run)


def test_an_unset_variable_fails_the_plan_naming_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SICOG_NOT_SET", raising=False)
    cfg = _config(tmp_path, 'launchers.sample={env: {HF_TOKEN: "${SICOG_NOT_SET}"}}')
    with pytest.raises(ConfigError, match=r"launchers\.sample\.env\.HF_TOKEN: environment variable SICOG_NOT_SET"):
        run_pipeline(cfg, dry_run=True, echo=lambda msg: None, config_dir=PRESETS)
    assert not (tmp_path / "run").exists()
    assert launcher_env(LauncherConfig(env={"A": "${SICOG_NOT_SET:-}"})) == {"A": ""}


def test_manifest_params_are_masked_and_a_new_key_is_not_a_new_result(tmp_path):
    from sicog.pipeline.engine import Engine
    from sicog.pipeline.step import Step

    out = tmp_path / "out.txt"

    def step(key: str) -> Step:
        return Step(name="s", kind="data", inputs={}, outputs={"out": str(out)},
                    params={"server": {"api_key": key, "url": "http://h"}},
                    action=lambda st, eng: out.write_text("x") and {}, work_dir=str(tmp_path / "s"))

    engine = Engine(tmp_path / "run", echo=lambda msg: None)
    assert engine.run([step(VALUE)])[0].status == "ran"
    text = (tmp_path / "run" / "manifests" / "s.json").read_text()
    assert VALUE not in text and json.loads(text)["params"]["server"] == {"api_key": "***", "url": "http://h"}
    assert engine.run([step(VALUE[::-1])])[0].status == "skipped"
