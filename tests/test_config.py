"""Typed config loading: overrides, unknown keys and wrong types name the file and dotted key."""

import pytest
import yaml

from sicog.config import ConfigError, TrainConfig, load_config, save_config


@pytest.fixture
def cfg_file(tmp_path):
    p = tmp_path / "stage.yaml"
    p.write_text(yaml.safe_dump({
        "stage": "s", "model": {"preset": "tiny", "tiny": {"hidden_size": 64}},
        "training": {"learning_rate": "2e-5", "tunable_parts": ["projector"]},
        "data": {"sources": [{"path": "a.jsonl", "weight": 2}]},
    }))
    return p


def test_load_with_overrides(cfg_file):
    cfg = load_config(TrainConfig, cfg_file, ["training.max_steps=5", "model.tiny.num_layers=2",
                                             "training.part_learning_rates={projector: 1e-3}"])
    assert cfg.training.learning_rate == 2e-5
    assert cfg.training.max_steps == 5
    assert cfg.model.tiny.num_layers == 2 and cfg.model.tiny.hidden_size == 64
    assert cfg.data.sources[0].weight == 2.0
    assert cfg.training.part_learning_rates == {"projector": 1e-3}


@pytest.mark.parametrize("override, needle", [
    ("training.learnin_rate=1", "training.learnin_rate: unknown key"),
    ("training.max_steps=abc", "training.max_steps: expected int"),
    ("model.tiny.hidden_size=1.5", "model.tiny.hidden_size: expected int"),
    ("data.sources=[{path: 1}]", "data.sources[0].path: expected str"),
    ("training.tunable_parts=projector", "training.tunable_parts: expected a list"),
])
def test_bad_override_names_key(cfg_file, override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, cfg_file, [override])
    assert needle in str(e.value) and str(cfg_file) in str(e.value)


def test_unknown_key_in_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  presett: tiny\n")
    with pytest.raises(ConfigError, match=r"bad.yaml.*model.presett: unknown key"):
        load_config(TrainConfig, p)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainConfig, tmp_path / "nope.yaml")
    p = tmp_path / "broken.yaml"
    p.write_text("model: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(TrainConfig, p)


def test_save_round_trip(cfg_file, tmp_path):
    cfg = load_config(TrainConfig, cfg_file, ["training.seed=7"])
    save_config(cfg, tmp_path / "resolved.yaml")
    again = load_config(TrainConfig, tmp_path / "resolved.yaml")
    assert again == cfg


def test_all_shipped_stage_configs_load():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(list((root / "tiny").glob("*.yaml")) + list((root / "qwen2_7b").glob("*.yaml")))
    stages = {f.stem for f in files}
    for name in ("stage0_warmup_perception", "stage0_warmup_reasoning", "stage1_align",
                 "stage15_pretrain", "stage2_sft"):
        assert name in stages
    for f in files:
        load_config(TrainConfig, f)
