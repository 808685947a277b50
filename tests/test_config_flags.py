"""Flags generated from the config dataclasses: one flag per setting, YAML under flags, choices."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest
import yaml

from sicog.config import ConfigError, save_config
from sicog.config_flags import (
    add_config_arguments,
    check_config,
    cli_fields,
    config_from_args,
    flag_names,
    parse_config,
    setting,
)
from sicog.eval.config import EvaluateConfig
from sicog.stages.curation.config import CurateConfig
from sicog.stages.sampling.config import SampleConfig

CLASSES = [SampleConfig, CurateConfig, EvaluateConfig]
#: the required settings of each command, with values that pass the checks
REQUIRED = {
    SampleConfig: {"model": "m", "data": "d.jsonl", "out": "o.jsonl", "mode": "cot"},
    CurateConfig: {"candidates": "c.jsonl", "out": "o.jsonl", "task": "caption"},
    EvaluateConfig: {"model": "ckpt", "benchmark": "b.tsv"},
}
#: (field, YAML value, flag spelling, flag value, loaded flag value) per class: YAML vs flag
OVERRIDE = {
    SampleConfig: ("batch_size", 7, "--batch-size", "9", 9),
    CurateConfig: ("threshold", 0.5, "--threshold", "0.75", 0.75),
    EvaluateConfig: ("prompt_style", "cot", "--prompt-style", "direct", "direct"),
}
#: (field, flag) with fixed choices per class
CHOICE = {SampleConfig: ("mode", "--mode"), CurateConfig: ("dtype", "--dtype"),
          EvaluateConfig: ("captions", "--captions")}


def _parser(cls) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_config_arguments(p, cls)
    return p


def _argv(values: dict) -> list[str]:
    fields = {f.name: f for f in dataclasses.fields(SampleConfig) + dataclasses.fields(CurateConfig)
              + dataclasses.fields(EvaluateConfig)}
    return [x for k, v in values.items() for x in (flag_names(fields[k])[0], str(v))]


@pytest.mark.parametrize("cls", CLASSES)
def test_every_field_has_exactly_one_flag_with_help_and_no_default(cls):
    parser = _parser(cls)
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    by_dest = {}
    for a in actions:
        assert a.dest not in by_dest, f"{cls.__name__}: two flags for {a.dest}"
        by_dest[a.dest] = a
        assert a.help and a.help.strip(), f"{cls.__name__}: {a.dest} has no help"
        assert a.default is None and parser.get_default(a.dest) is None
    hidden = {f.name for f in dataclasses.fields(cls)} - {f.name for f in cli_fields(cls)}
    assert set(by_dest) == {f.name for f in cli_fields(cls)} | {"config"}
    assert "wait_timeout" in hidden or cls is EvaluateConfig
    assert by_dest["config"].option_strings == [] and by_dest["config"].nargs == "?"
    assert all(v is None for v in vars(parser.parse_args([])).values())


@pytest.mark.parametrize("cls", CLASSES)
def test_only_required_flags_give_the_dataclass_defaults(cls):
    loaded = parse_config(cls, _argv(REQUIRED[cls]))
    assert loaded == dataclasses.replace(cls(), **REQUIRED[cls])
    first = next(iter(REQUIRED[cls]))
    missing = {k: v for k, v in REQUIRED[cls].items() if k != first}
    with pytest.raises(ConfigError, match=rf"^--{first} is required \(or `{first}:` in CONFIG.yaml\)$"):
        parse_config(cls, _argv(missing))


@pytest.mark.parametrize("cls", CLASSES)
def test_yaml_settings_then_the_flags_given_win(cls, tmp_path):
    name, in_yaml, flag, flag_value, loaded_value = OVERRIDE[cls]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**REQUIRED[cls], name: in_yaml, "progress": False}))
    from_yaml = parse_config(cls, [str(path)])
    assert getattr(from_yaml, name) == in_yaml and from_yaml.progress is False
    both = parse_config(cls, [str(path), flag, flag_value, "--seed" if cls is not EvaluateConfig else "--limit", "3"])
    assert getattr(both, name) == loaded_value and both.progress is False  # the rest of the YAML stays
    assert dataclasses.replace(both, **{name: in_yaml}) != from_yaml  # and the extra flag applied
    # a required setting may come from the YAML or from a flag
    first = next(iter(REQUIRED[cls]))
    path.write_text(yaml.safe_dump({k: v for k, v in REQUIRED[cls].items() if k != first}))
    assert getattr(parse_config(cls, [str(path), *_argv({first: "x"})]), first) == "x"


@pytest.mark.parametrize("cls", CLASSES)
def test_saved_config_loads_back_equal(cls, tmp_path):
    cfg = dataclasses.replace(cls(), **REQUIRED[cls], progress=False, batch_size=3)
    save_config(cfg, tmp_path / "c.yaml")
    assert parse_config(cls, [str(tmp_path / "c.yaml")]) == cfg


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_choice_in_yaml_or_flag_names_the_allowed_values(cls, tmp_path, capsys):
    name, flag = CHOICE[cls]
    allowed = ", ".join(next(f for f in dataclasses.fields(cls) if f.name == name).metadata["choices"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**REQUIRED[cls], name: "bogus"}))
    with pytest.raises(ConfigError) as err:
        parse_config(cls, [str(path)])
    text = str(err.value)
    assert str(path) in text and f"{name} ({flag})" in text and allowed in text and "'bogus'" in text
    with pytest.raises(SystemExit):
        parse_config(cls, [*_argv(REQUIRED[cls]), flag, "bogus"])
    err_text = capsys.readouterr().err
    assert flag in err_text and "invalid choice" in err_text and all(a in err_text for a in allowed.split(", "))
    built = dataclasses.replace(cls(), **{**REQUIRED[cls], name: "bogus"})  # a config built in code
    with pytest.raises(ConfigError, match=rf"^{flag} \({name}\): must be one of {allowed}, got 'bogus'$") as e:
        check_config(built)
    assert (e.value.key, e.value.flag, e.value.file) == (name, flag, None)


def test_unknown_key_and_wrong_type_name_the_file_and_key(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("model: m\nnum_candidates: 3\n")
    with pytest.raises(ConfigError, match=r"s.yaml: key num_candidates: unknown key \(valid keys: .*\bn\b"):
        parse_config(SampleConfig, [str(path)])
    path.write_text("model: m\nn: three\n")
    with pytest.raises(ConfigError, match=r"s.yaml: key n \(--n\): expected int, got str 'three'"):
        parse_config(SampleConfig, [str(path)])
    path.write_text("model: m\ncaptions: off\n")   # YAML 1.1: off is false
    with pytest.raises(ConfigError, match=r"key captions \(--captions\): expected str, got bool .*quote the value"):
        parse_config(EvaluateConfig, [str(path)])
    path.write_text("model: m\ncaptions: 'off'\n")
    assert parse_config(EvaluateConfig, [str(path), "--benchmark", "b.tsv"]).captions == "off"


def test_aliases_inverted_bools_and_validation():
    base = _argv(REQUIRED[SampleConfig])
    assert parse_config(SampleConfig, base + ["--num-candidates", "4"]).n == 4
    assert parse_config(SampleConfig, base + ["--n", "2", "--no-progress"]) == \
        SampleConfig(**REQUIRED[SampleConfig], n=2, progress=False)
    ev = parse_config(EvaluateConfig, _argv(REQUIRED[EvaluateConfig]) + ["--shuffled-image-control"])
    assert ev.shuffled_image_control is True and ev.progress is True
    with pytest.raises(ConfigError, match=r"^--n \(n\): must be >= 1, got 0$"):  # the field's range
        parse_config(SampleConfig, base + ["--num-candidates", "0"])
    with pytest.raises(Exception, match="--backend openai needs --api-base"):
        parse_config(SampleConfig, base + ["--backend", "openai"])
    assert parse_config(SampleConfig, base + ["--backend", "openai", "--api-base", "http://h/v1"]).api_base


def test_declaration_errors_are_caught_when_the_flags_are_built():
    @dataclass
    class NoHelp:
        x: int = setting(1, "")

    @dataclass
    class OnByDefault:
        flag: bool = setting(True, "a bool that no flag could switch off")

    for cls, message in ((NoHelp, "needs a help text"), (OnByDefault, "needs an 'invert' flag")):
        with pytest.raises(TypeError, match=message):
            _parser(cls)
    with pytest.raises(TypeError, match="unexpected keyword argument 'chioces'"):
        setting(1, "x", chioces=(1, 2))


def test_config_from_args_reads_only_its_own_fields():
    """The namespace of `sicog` also holds the top-level flags; they are ignored."""
    args = _parser(CurateConfig).parse_args(_argv(REQUIRED[CurateConfig]))
    args.verbose, args.command = True, "curate"
    assert config_from_args(CurateConfig, args) == CurateConfig(**REQUIRED[CurateConfig])
