"""Secret values never reach a saved config, a log line or an error text (sicog.utils.secrets)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from sicog.config import save_config
from sicog.utils import secrets
from sicog.utils.secrets import RedactingFilter, is_secret_key, mask_secrets, redact, register_secret

ROOT = Path(__file__).resolve().parents[2]
VALUE = "sk-test-1234567890abcdef"


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "HF_TOKEN", "hf_token", "apiKey", "db_password",
                                  "AWS_SECRET_ACCESS_KEY", "client_secret", "GITHUB_TOKEN", "key", "PASSWD"])
def test_secret_looking_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize("name", ["max_new_tokens", "caption_max_new_tokens", "tokenizer_corpus",
                                  "api_key_env", "SSL_KEY_FILE", "token_path", "keep_fraction", "monkeys",
                                  "sort_keys", "PATH", "HOME", ""])
def test_settings_that_only_look_alike_are_not_secrets(name):
    assert not is_secret_key(name)


def test_mask_secrets_recursively_and_keeps_references():
    cfg = {"launcher": {"env": {"OPENAI_API_KEY": VALUE, "HF_TOKEN": "${HF_TOKEN}", "OMP_NUM_THREADS": "1"}},
           "launchers": {"train": {"env": {"WANDB_API_KEY": "abc", "db_password": None}}},
           "servers": [{"token": VALUE, "url": "http://x"}], "api_key_env": "OPENAI_API_KEY",
           "max_new_tokens": 64, "use_api_key": True, "keys": {"api_key": [VALUE, 3]}}
    out = mask_secrets(cfg)
    env = out["launcher"]["env"]
    assert env == {"OPENAI_API_KEY": "***", "HF_TOKEN": "${HF_TOKEN}", "OMP_NUM_THREADS": "1"}
    assert out["launchers"]["train"]["env"] == {"WANDB_API_KEY": "***", "db_password": None}
    assert out["servers"] == [{"token": "***", "url": "http://x"}]
    assert out["api_key_env"] == "OPENAI_API_KEY" and out["max_new_tokens"] == 64 and out["use_api_key"] is True
    assert out["keys"] == {"api_key": ["***", "***"]}
    assert cfg["launcher"]["env"]["OPENAI_API_KEY"] == VALUE  # a copy: the original is untouched
    # a default inside a reference may itself be a secret: masked
    assert mask_secrets({"api_key": "${K:-" + VALUE + "}"}) == {"api_key": "***"}


def test_redact_uses_secret_environment_variables_and_registered_values(monkeypatch):
    monkeypatch.setattr(secrets, "_registered", set())
    monkeypatch.setenv("SICOG_TEST_TOKEN", VALUE)
    monkeypatch.setenv("SICOG_TEST_SHORT_KEY", "abc")  # < 8 characters: never a secret
    monkeypatch.setenv("SICOG_TEST_PLAIN", "not-a-secret-at-all")
    text = f"Bearer {VALUE} abc not-a-secret-at-all"
    assert redact(text) == "Bearer *** abc not-a-secret-at-all"
    other = "the-server-echoed-this-credential"
    assert redact(other) == other
    register_secret(other)
    register_secret("short")  # a configured key is a secret whatever its length
    assert redact(f"error: {other}!") == "error: ***!" and redact("short") == "***"
    assert redact(12345) == "12345"
    # strings under other keys of a saved mapping are redacted too
    assert mask_secrets({"api_base": f"http://h/?k={other}"}) == {"api_base": "http://h/?k=***"}


def test_redacting_filter_covers_message_arguments_and_traceback(monkeypatch):
    monkeypatch.setattr(secrets, "_registered", set())
    register_secret(VALUE)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("sicog.test_secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("server said %s", f"bad key {VALUE}")
        try:
            raise RuntimeError(f"401 for {VALUE}")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert VALUE not in text
    assert "server said bad key ***" in text and "RuntimeError: 401 for ***" in text


@dataclass
class _WithSecret:
    name: str = "x"
    api_key: str | None = None
    env: dict[str, str] = field(default_factory=dict)


def test_save_config_masks_secret_values(tmp_path):
    path = tmp_path / "c.yaml"
    save_config(_WithSecret(api_key=VALUE, env={"HF_TOKEN": VALUE, "HOME": "/h"}), path)
    assert VALUE not in path.read_text()
    assert yaml.safe_load(path.read_text()) == {"name": "x", "api_key": "***", "env": {"HF_TOKEN": "***", "HOME": "/h"}}


def _sicog_process(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_cli_logging_and_uncaught_errors_are_redacted():
    code = ("import logging; from sicog.cli import configure_logging; configure_logging(); "
            "logging.getLogger('sicog.x').info('auth header: Bearer %s', __import__('os').environ['HF_TOKEN']); "
            "raise RuntimeError('rejected ' + __import__('os').environ['HF_TOKEN'])")
    res = _sicog_process(code, {"HF_TOKEN": VALUE})
    assert res.returncode == 1
    assert VALUE not in res.stderr
    assert "auth header: Bearer ***" in res.stderr and "RuntimeError: rejected ***" in res.stderr


def test_cli_error_text_is_redacted(tmp_path):
    res = subprocess.run([sys.executable, "-m", "sicog", "run", str(tmp_path / f"{VALUE}.yaml")], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": VALUE})
    assert res.returncode == 2
    assert VALUE not in res.stderr + res.stdout
    assert "sicog run: error: " in res.stderr and "***.yaml: config file not found" in res.stderr
