"""One way to declare a setting (sicog.utils.fields.setting), one check of it (check_field, run by
check_config on every field), errors that carry key, flag and file."""

from __future__ import annotations

import ast
import dataclasses
import pickle
import typing
from pathlib import Path

import pytest
import yaml

from sicog.config import ConfigError, ModelConfig, TinyModelConfig, UhdSettings, check_config, load_config
from sicog.config_flags import check_config as check_command_config
from sicog.config_flags import parse_config
from sicog.stages.sampling.config import SampleConfig
from sicog.utils.fields import check_field

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ["--model", "m", "--data", "d.jsonl", "--out", "o.jsonl", "--mode", "cot"]
BUILT = SampleConfig(model="m", data="d.jsonl", out="o.jsonl", mode="cot")


def _error(call) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        call()
    return e.value


def test_a_range_from_yaml_names_the_file_the_key_and_the_flag(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"model": "m", "data": "d.jsonl", "out": "o.jsonl", "mode": "cot", "n": 0}))
    e = _error(lambda: parse_config(SampleConfig, [str(path)]))
    assert (e.key, e.flag, e.file) == ("n", "--n", str(path))
    assert str(e) == f"{path}: key n (--n): must be >= 1, got 0"


def test_a_range_from_a_flag_names_the_flag_and_the_key():
    e = _error(lambda: parse_config(SampleConfig, [*REQUIRED, "--num-candidates", "0"]))
    assert (e.key, e.flag, e.file) == ("n", "--n", None)
    assert str(e) == "--n (n): must be >= 1, got 0"
    e = _error(lambda: parse_config(SampleConfig, [*REQUIRED, "--temperature", "nan"]))
    assert str(e) == "--temperature (temperature): must be >= 0, got nan"  # never NaN, whatever the range


def test_a_range_from_code_names_the_flag_and_the_key():
    e = _error(lambda: check_command_config(dataclasses.replace(BUILT, top_p=0.0)))
    assert (e.key, e.flag, str(e)) == ("top_p", "--top-p", "--top-p (top_p): must be in (0, 1], got 0.0")
    e = _error(lambda: check_command_config(dataclasses.replace(BUILT, wait_timeout=0.0)))  # YAML and code only
    assert (e.key, e.flag, str(e)) == ("wait_timeout", None, "wait_timeout: must be > 0, got 0.0")


def test_a_range_from_set_in_a_nested_section_names_the_dotted_key():
    from sicog.config import TrainConfig

    e = _error(lambda: load_config(TrainConfig, None, ["training.lora.r=0"]))
    assert (e.key, e.flag, e.file) == ("training.lora.r", None, "--set")
    assert str(e) == "--set: key training.lora.r: must be >= 1, got 0"


def test_sample_dtype_is_one_of_its_choices_and_each_names_a_torch_dtype():
    from sicog.stages.sampling.config import DTYPES
    from sicog.stages.sampling.hf_backend import TORCH_DTYPES

    e = _error(lambda: check_command_config(dataclasses.replace(BUILT, dtype="fp8")))
    assert (e.key, e.flag) == ("dtype", "--dtype") and "must be one of auto, float32" in str(e)
    assert set(DTYPES) == {"auto", *TORCH_DTYPES}


@pytest.mark.parametrize("kwargs, needle", [
    ({"preset": "huge"}, "preset: must be one of tiny, got 'huge'"),
    ({"preset": "tiny", "arch": "uhd2"}, "arch: must be one of llava, uhd, got 'uhd2'"),
    ({"preset": "tiny", "attn_implementation": "fast"}, "attn_implementation: must be one of auto, sdpa"),
    ({"preset": "tiny", "tiny": TinyModelConfig(image_size=60)}, "tiny.image_size: must be a multiple of patch_size (16)"),
    ({"preset": "tiny", "uhd": UhdSettings(num_queries=15)}, "uhd.num_queries: must be a square number"),
    ({"preset": "tiny", "uhd": UhdSettings(separator_init_ids=[1])}, "uhd.separator_init_ids: two ids"),
])
def test_what_model_code_trusts_is_checked_by_the_config(kwargs, needle):
    """sicog.model builds from a checked config and no longer checks these itself."""
    assert needle in str(_error(lambda: check_config(ModelConfig(**kwargs))))


def test_a_config_error_keeps_its_places_when_pickled_or_moved():
    e = ConfigError("must be >= 1, got 0", key="r", flag=None, file=None)
    moved = e.at(within="training.lora").at(file="stage.yaml")
    assert str(moved) == "stage.yaml: key training.lora.r: must be >= 1, got 0"
    back = pickle.loads(pickle.dumps(moved))
    assert (back.key, back.file, str(back)) == (moved.key, moved.file, str(moved))
    assert str(ConfigError("x.yaml: top level must be a mapping")) == "x.yaml: top level must be a mapping"


def _command_configs() -> list[type]:
    from sicog.data.check import DataCheckConfig
    from sicog.data.converters.common import ConvertConfig
    from sicog.data.overlap import OverlapConfig
    from sicog.eval.config import EvaluateConfig
    from sicog.eval.vlmeval import LaunchConfig
    from sicog.model.uhd.convert import ConvertUhdConfig
    from sicog.stages.annotation.config import AnnotateConfig
    from sicog.stages.pairs import PairsConfig

    return [SampleConfig, EvaluateConfig, AnnotateConfig, PairsConfig, DataCheckConfig, OverlapConfig,
            LaunchConfig, ConvertConfig, ConvertUhdConfig]


def test_every_number_of_a_command_config_has_a_range():
    unbounded = {"seed"}  # any integer seeds a run (hashed or mixed, never handed to numpy)
    missing = []
    for cls in _command_configs():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            inner = [a for a in typing.get_args(hints[f.name]) if a is not type(None)] or [hints[f.name]]
            if any(t in (int, float) for t in inner) and "range" not in f.metadata and f.name not in unbounded:
                missing.append(f"{cls.__name__}.{f.name}")
    assert not missing, f"numbers without a range: {missing}"
    for cls in _command_configs():  # every default is allowed by its own field
        for f in dataclasses.fields(cls):
            check_field(f, getattr(cls(), f.name), f.name)


#: not yet converted: their validate still checks ranges by hand (issue 27, item 2; other work in flight)
NOT_YET = {"sicog/pipeline/config.py"}


def _is_number(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


def _names_self(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Name) and n.id == "self" for n in ast.walk(node))


def _range_checks(path: Path) -> list[str]:
    """`if` tests in a config's `validate` / `cross_check` that order a value against a number
    (`x < 1`, `0 < x <= 1`) or a value taken from a table (`value < low`) and name fewer than two settings: a range written by hand, where
    `setting(min=..., max=...)` belongs. A rule across settings (`x > 0 and not y`) is not one."""
    ordering = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
    found = []
    for cls in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef)
                   and (n.name in ("validate", "cross_check") or n.name.startswith("check_"))):
            for node in (n for n in ast.walk(fn) if isinstance(n, ast.If)):
                ranges = [c for c in ast.walk(node.test) if isinstance(c, ast.Compare)
                          and any(isinstance(op, ordering) for op in c.ops)
                          and (any(_is_number(x) for x in [c.left, *c.comparators])
                               or not _names_self(c))]  # `value < low` over a table of settings
                settings = {a.attr for a in ast.walk(node.test) if isinstance(a, ast.Attribute)
                            and isinstance(a.value, ast.Name) and a.value.id == "self"}
                if ranges and len(settings) < 2:
                    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
                    found.append(f"{where}:{node.lineno} {cls.name}.{fn.name}")
    return found


def test_no_config_checks_a_range_by_hand(tmp_path):
    files = [p for p in sorted((ROOT / "sicog").rglob("*.py")) if str(p.relative_to(ROOT)) not in NOT_YET]
    found = [hit for p in files for hit in _range_checks(p)]
    assert not found, f"ranges checked by hand in validate (declare them on the field): {found}"
    # the check finds the dialect it forbids
    sample = tmp_path / "by_hand.py"
    sample.write_text("class C:\n    def validate(self):\n        if self.n < 1:\n            raise ValueError\n"
                      "        for flag, value in (('--a', self.a),):\n            if value < 1:\n"
                      "                raise ValueError\n        if self.x > 0 and not self.y:\n            pass\n")
    assert _range_checks(sample) == ["by_hand.py:3 C.validate", "by_hand.py:6 C.validate"]


def test_validate_keeps_the_rules_across_settings():
    from sicog.utils.io import SicogError

    openai = dataclasses.replace(BUILT, backend="openai", api_base="http://h/v1")
    check_command_config(openai)
    with pytest.raises(SicogError, match="--backend openai: beam search is not part of the chat-completions API"):
        check_command_config(dataclasses.replace(openai, num_beams=2))  # was checked when the backend started
    with pytest.raises(SicogError, match="--backend openai needs --api-base"):
        check_command_config(dataclasses.replace(openai, api_base=None))
