"""vLLM shape checks (sicog.model.serving) and `sicog serve`'s refusals: no vLLM needed."""

from __future__ import annotations

import json
import sys

import pytest

from sicog.cli import main
from sicog.config import ModelConfig, TinyModelConfig
from sicog.model.serving import (
    VLLM_CPU_HEAD_SIZES,
    checkpoint_serving_problems,
    head_problems,
    model_config_problems,
)


def test_head_sizes():
    assert head_problems(96, 3, 1) == []  # the tiny preset: 32
    assert head_problems(4096, 32, 8) == [] and head_problems(3584, 28, 4) == []  # LLaMA-7B, Qwen2-7B: 128
    (problem,) = head_problems(96, 4, 2)
    assert "attention head size 24" in problem and str(VLLM_CPU_HEAD_SIZES[0]) in problem
    assert "not a multiple" in head_problems(96, 5)[0]
    assert "key/value heads" in head_problems(96, 3, 2)[0]
    assert head_problems(100, 10, head_dim=64) == []  # an explicit head_dim wins


def test_the_tiny_preset_is_servable_and_a_changed_one_is_named():
    assert model_config_problems(ModelConfig(preset="tiny")) == []
    bad = ModelConfig(preset="tiny", tiny=TinyModelConfig(num_heads=4, num_kv_heads=2))
    assert "model.tiny: attention head size 24" in model_config_problems(bad)[0]


def test_serve_refuses_before_starting_anything(tiny_ckpt, tmp_path, capsys):
    fake_python = sys.executable  # any interpreter: the checks run before it would be started
    (tmp_path / "h24").mkdir()
    config = json.loads((tiny_ckpt / "config.json").read_text())
    config["text_config"]["num_attention_heads"] = 4
    config["text_config"]["num_key_value_heads"] = 2
    for f in tiny_ckpt.iterdir():
        (tmp_path / "h24" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "h24" / "config.json").write_text(json.dumps(config))
    assert main(["serve", str(tmp_path / "h24"), "--vllm-python", fake_python, "--print-command"]) == 2
    assert "attention head size 24" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "nowhere"), "--vllm-python", fake_python]) == 2
    assert "not a complete checkpoint" in capsys.readouterr().err
    assert main(["serve", str(tiny_ckpt), "--vllm-python", str(tmp_path / "no-python")]) == 2
    assert "scripts/vllm_env.sh" in capsys.readouterr().err

    assert main(["serve", str(tiny_ckpt), "--vllm-python", fake_python, "--port", "8123", "--print-command",
                 "--vllm-args=--max-num-seqs 4"]) == 0
    line = capsys.readouterr().out
    for part in ("-m vllm.entrypoints.openai.api_server", "--host 127.0.0.1", "--port 8123", "--dtype float32",
                 "--no-enable-chunked-prefill", "--chat-template-content-format openai", "chat_template.jinja",
                 "--max-num-seqs 4"):
        assert part in line, part
    assert "--trust-remote-code" not in line


def test_a_uhd_checkpoint_needs_the_plugin(tiny_uhd_ckpt):
    (problem,) = checkpoint_serving_problems(tiny_uhd_ckpt)
    assert "sicog_uhd" in problem and "plugin" in problem
    assert checkpoint_serving_problems(tiny_uhd_ckpt, ("sicog_uhd",)) == []


def test_a_uhd_checkpoint_with_a_siglip_tower_is_named(tiny_uhd_ckpt, tmp_path):
    config = json.loads((tiny_uhd_ckpt / "config.json").read_text())
    config["vision_config"]["model_type"] = "siglip_vision_model"
    (tmp_path / "config.json").write_text(json.dumps(config))
    (problem,) = checkpoint_serving_problems(tmp_path, ("sicog_uhd",))
    assert "siglip_vision_model" in problem and "CLIP towers only" in problem


@pytest.mark.parametrize("select", [[], ["-m", "not slow"]])
def test_vllm_tests_are_left_out_unless_selected(select):
    import subprocess

    from tests.stages._sampling import REPO, subprocess_env

    def collected(extra):
        res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                              "tests/stages/test_sample_vllm.py", *extra],
                             capture_output=True, text=True, timeout=300, cwd=REPO, env=subprocess_env())
        return res.stdout

    assert "test_greedy_outputs_equal_the_hf_backend" not in collected(select)
    assert "test_greedy_outputs_equal_the_hf_backend" in collected(["-m", "vllm"])


def test_serve_takes_a_uhd_checkpoint_where_the_plugin_is_installed(tiny_uhd_ckpt, tmp_path, capsys):
    """The plugin is found through the vLLM venv's entry points (a stand-in interpreter lists them)."""
    def interpreter(name, plugins):
        path = tmp_path / name
        path.write_text(f"#!/bin/sh\necho {plugins}\n")
        path.chmod(0o755)
        return str(path)

    with_plugin = interpreter("with", "lora_filesystem_resolver sicog_uhd")
    assert main(["serve", str(tiny_uhd_ckpt), "--vllm-python", with_plugin, "--print-command"]) == 0
    line = capsys.readouterr().out
    for part in ("--trust-remote-code", "--dtype float32", "--max-model-len 1024", "chat_template.jinja"):
        assert part in line, part
    without = interpreter("without", "lora_filesystem_resolver")
    assert main(["serve", str(tiny_uhd_ckpt), "--vllm-python", without, "--print-command"]) == 2
    err = capsys.readouterr().err
    assert "sicog_uhd" in err and "scripts/vllm_env.sh" in err
