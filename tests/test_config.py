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
    files = sorted(list((root / "tiny").glob("*.yaml")) + list((root / "qwen2_7b").glob("*.yaml"))
                   + list((root / "qwen2_7b_uhd").glob("*.yaml")))
    stages = {f.stem for f in files}
    for name in ("stage0_warmup_perception", "stage0_warmup_reasoning", "stage1_align",
                 "stage15_pretrain", "stage2_sft"):
        assert name in stages
    from sicog.stages.dpo.config import DPOConfig

    for f in files:   # dpo*.yaml: a training stage plus its `dpo:` section
        load_config(DPOConfig if f.stem.startswith("dpo") else TrainConfig, f)


@pytest.mark.parametrize("text, bf16", [("true", True), ("false", False), ("auto", "auto"),
                                        ("True", True), ("no", False)])
def test_bf16_tf32_take_true_false_or_auto(tmp_path, text, bf16):
    p = tmp_path / "precision.yaml"
    p.write_text(f"training:\n  bf16: {text}\n  tf32: {text}\n")
    cfg = load_config(TrainConfig, p)
    assert cfg.training.bf16 == bf16 and type(cfg.training.bf16) is type(bf16)
    assert cfg.training.tf32 == bf16
    save_config(cfg, tmp_path / "again.yaml")  # a bool is written back as a YAML bool
    assert load_config(TrainConfig, tmp_path / "again.yaml").training.bf16 == bf16


@pytest.mark.parametrize("override, needle", [
    ("training.bf16=maybe", "key training.bf16: must be one of true, false, auto, got 'maybe'"),
    ("training.tf32='on'", "key training.tf32: must be one of true, false, auto, got 'on'"),
    ("training.bf16=1", "key training.bf16: expected bool | str, got 1"),
    ("data.on_error=ignore", "key data.on_error: must be one of raise, skip, got 'ignore'"),
    ("model.arch=uhd2", "key model.arch: must be one of llava, uhd, got 'uhd2'"),
    ("model.preset=small", "key model.preset: must be one of tiny, got 'small'"),
    ("model.attn_implementation=flash", "key model.attn_implementation: must be one of auto, sdpa, "
                                        "flash_attention_2, eager, got 'flash'"),
    ("training.lr_scheduler_type=cosin", "key training.lr_scheduler_type: must be one of linear, cosine,"),
    ("training.tunable_parts=[projector, projektor]", "key training.tunable_parts[1]: must be one of "
                                                      "vision_tower, projector, language_model, got 'projektor'"),
    ("training.part_learning_rates={llm: 1.0}", "key training.part_learning_rates.llm: must be one of "
                                                "vision_tower, projector, language_model, got 'llm'"),
])
def test_fixed_choices_are_checked_at_load(cfg_file, override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, cfg_file, [override])
    assert needle in str(e.value) and str(cfg_file) in str(e.value)


def test_check_config_on_a_config_built_in_code():
    from sicog.config import DataConfig, check_config

    cfg = TrainConfig(data=DataConfig(on_error="ignore"))
    with pytest.raises(ConfigError, match="^data.on_error: must be one of raise, skip, got 'ignore'$") as e:
        check_config(cfg)
    assert (e.value.key, e.value.flag, e.value.file) == ("data.on_error", None, None)
    check_config(TrainConfig())  # every default is one of its choices


def test_choice_lists_match_what_they_name():
    from transformers import SchedulerType

    from sicog.config import ARCHS, LR_SCHEDULERS
    from sicog.model.build import BUILDERS

    assert set(LR_SCHEDULERS) == {s.value for s in SchedulerType}
    assert set(ARCHS) == set(BUILDERS)


def test_trainer_resolves_bool_and_auto_precision(monkeypatch):
    import torch

    from sicog.config import TrainingConfig
    from sicog.stages.trainer import resolve_precision
    from sicog.utils.io import SicogError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU: neither is supported
    assert resolve_precision(TrainingConfig()) == (False, False)
    assert resolve_precision(TrainingConfig(bf16=False, tf32=False)) == (False, False)
    with pytest.raises(SicogError, match="training.bf16: true, but this device does not support it"):
        resolve_precision(TrainingConfig(bf16=True))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # an Ampere-class GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda: (8, 0))
    assert resolve_precision(TrainingConfig()) == (True, True)
    assert resolve_precision(TrainingConfig(bf16=True, tf32=False)) == (True, False)
    with pytest.raises(SicogError, match="must be one of true, false, auto, got 'yes'"):
        resolve_precision(TrainingConfig(tf32="yes"))


@pytest.mark.parametrize("override, needle", [
    ("training.per_device_train_batch_size=0", "key training.per_device_train_batch_size: must be >= 1, got 0"),
    ("training.learning_rate=-1e-5", "key training.learning_rate: must be >= 0, got -1e-05"),
    ("training.learning_rate=.nan", "key training.learning_rate: must be >= 0, got nan"),
    ("training.max_steps=-5", "key training.max_steps: must be -1 or >= 1, got -5"),
    ("training.max_steps=0", "key training.max_steps: must be -1 or >= 1, got 0"),
    ("training.warmup_ratio=1.0", "key training.warmup_ratio: must be in [0, 1), got 1.0"),
    ("training.warmup_ratio=-0.1", "key training.warmup_ratio: must be in [0, 1), got -0.1"),
    ("training.weight_decay=-0.1", "key training.weight_decay: must be >= 0, got -0.1"),
    ("training.gradient_accumulation_steps=0", "key training.gradient_accumulation_steps: must be >= 1, got 0"),
    ("training.logging_steps=0", "key training.logging_steps: must be >= 1, got 0"),
    ("training.save_steps=0", "key training.save_steps: must be >= 1, got 0"),
    ("training.save_total_limit=0", "key training.save_total_limit: must be >= 1, got 0"),
    ("training.num_train_epochs=0", "key training.num_train_epochs: must be > 0, got 0.0"),
    ("training.max_grad_norm=-1", "key training.max_grad_norm: must be >= 0, got -1.0"),
    ("training.seed=-1", "key training.seed: must be in [0, 4294967295], got -1"),
    ("training.part_learning_rates={projector: -1}", "key training.part_learning_rates.projector: must be >= 0"),
    ("training.lora.r=0", "key training.lora.r: must be >= 1, got 0"),
    ("training.lora.alpha=0", "key training.lora.alpha: must be > 0, got 0"),
    ("training.lora.dropout=1", "key training.lora.dropout: must be in [0, 1), got 1.0"),
    ("data.max_length=0", "key data.max_length: must be >= 1, got 0"),
    ("data.num_workers=-1", "key data.num_workers: must be >= 0, got -1"),
    ("data.num_samples=0", "key data.num_samples: must be >= 1, got 0"),
    ("data.packing_tokens=0", "key data.packing_tokens: must be >= 1, got 0"),
    ("data.packing_tokens=64", "key data.packing_tokens: must be >= max_length (2048) so that every sample fits"),
    ("data.sources=[{path: a.jsonl, weight: 0}]", "key data.sources[0].weight: must be > 0, got 0.0"),
    ("data.sources=[{path: a.jsonl, weight: -2}]", "key data.sources[0].weight: must be > 0, got -2.0"),
    ("data.sources=[{path: a.jsonl, max_samples: 0}]", "key data.sources[0].max_samples: must be >= 1, got 0"),
    ("model.tiny.hidden_size=0", "key model.tiny.hidden_size: must be >= 1, got 0"),
])
def test_numeric_ranges_are_checked_at_load(cfg_file, override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(TrainConfig, cfg_file, [override])
    assert needle in str(e.value) and str(cfg_file) in str(e.value)


@pytest.mark.parametrize("override", ["training.max_steps=-1", "training.max_steps=1", "training.warmup_ratio=0",
                                      "training.learning_rate=0", "training.max_grad_norm=0", "data.num_workers=0",
                                      "training.save_total_limit=null", "training.lora.dropout=0"])
def test_range_edges_that_are_allowed(cfg_file, override):
    load_config(TrainConfig, cfg_file, [override])


def test_ranges_on_a_config_built_in_code_and_every_numeric_field_has_one():
    import dataclasses
    import typing

    from sicog.config import TrainingConfig, check_config

    with pytest.raises(ConfigError, match=r"^training.per_device_train_batch_size: must be >= 1, got 0$"):
        check_config(TrainConfig(training=TrainingConfig(per_device_train_batch_size=0)))
    unbounded = {"ModelConfig.vision_feature_layer",  # a layer index: negative counts from the end
                 "DataSource.share"}  # a fraction in (0, 1), checked with the other shares (check_shares)
    missing = []

    def walk(cls):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            inner = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
            if typing.get_origin(tp) in (list, dict):
                inner = [typing.get_args(tp)[-1]]
            for t in inner:
                if dataclasses.is_dataclass(t):
                    walk(t)
                elif t in (int, float) and "range" not in f.metadata and f"{cls.__name__}.{f.name}" not in unbounded:
                    missing.append(f"{cls.__name__}.{f.name}")

    walk(TrainConfig)
    assert not missing, f"numeric fields without a range: {missing}"
