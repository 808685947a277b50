"""One typed config per command: the argparse flags are generated from the config dataclass.

Each setting of a command (`sicog sample`, `curate`, `evaluate`, `annotate`, `pairs`, `data check`,
`data overlap`, the converters, ...) is declared exactly once, as a field of the command's config
dataclass, with `setting` (sicog.utils.fields, re-exported here):

    n: int = setting(6, "candidates per item", min=1, flags=("--n", "--num-candidates"))

The allowed values (`choices`, `min` / `max`) are checked by `sicog.config.check_config` however the
value came (YAML, flag, code); argparse also checks `choices` on the command line. The command-line
metadata of `setting`:

    help      required: the flag's help text
    flags     the flag names (default: `--field-name`, underscores as dashes)
    metavar   the value's name in --help
    required  the command needs a value: from a flag or from CONFIG.yaml (default False)
    invert    for a bool that defaults to True: the flag that sets it False (`--no-progress`)
    cli       False keeps the field out of the command line (YAML and code only)

`add_config_arguments(parser, cls)` adds one flag per field (argparse default None, so the flags
actually given can be told apart) and the optional positional CONFIG.yaml. `config_from_args(cls,
args)` loads CONFIG.yaml with the strict `sicog.config.load_config` (or starts from the
defaults), applies the flags given and checks the result (`check_config`). Errors about a
setting carry its flag (`ConfigError.flag`) as well as its key. A config written by
`sicog.config.save_config` loads back equal, so a tool can write `sample.yaml` and run
`sicog sample sample.yaml`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from sicog import config as _config
from sicog.config import ConfigError, load_config
from sicog.utils.fields import setting  # noqa: F401 (re-exported: the commands declare their settings with it)

T = TypeVar("T")

#: dest of the positional CONFIG.yaml argument (no config dataclass may have a field of this name)
CONFIG_DEST = "config"
_FLAG_TYPES = (str, int, float, bool)


def cli_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of `cls` that have a flag (all but those with metadata cli=False)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]


def flag_names(f: dataclasses.Field) -> tuple[str, ...]:
    """The command-line spelling(s) of field `f`; the first is the one error messages name."""
    if f.default is True:  # a bool on by default: only its `invert` flag exists
        return (f.metadata["invert"],) if f.metadata.get("invert") else ()
    return tuple(f.metadata.get("flags") or ("--" + f.name.replace("_", "-"),))


def _flag_type(cls: type, f: dataclasses.Field, hint: Any) -> type:
    """str / int / float / bool from the field's annotation (`X | None` gives X)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    if hint not in _FLAG_TYPES:
        raise TypeError(f"{cls.__name__}.{f.name}: a flag needs a str, int, float or bool field, not {hint}; "
                        "mark it cli=False to keep it YAML-only")
    return hint


def _help_text(cls: type, f: dataclasses.Field) -> str:
    text = f.metadata.get("help")
    if not text or not str(text).strip():
        raise TypeError(f"{cls.__name__}.{f.name}: every setting needs a help text (metadata 'help')")
    text = str(text)
    if f.metadata.get("required"):
        text += " (required)"
    elif f.default not in (None, "") and not isinstance(f.default, bool) and "default" not in text:
        text += f" (default: {f.default})"
    return text.replace("%", "%%")  # argparse %-formats help texts


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add the optional positional CONFIG.yaml and one flag per field of dataclass `cls`.

    Every flag's argparse default is None: `config_from_args` applies only the flags given.
    """
    hints = typing.get_type_hints(cls)
    parser.add_argument(CONFIG_DEST, nargs="?", default=None, metavar="CONFIG.yaml",
                        help="a YAML file with any of these settings, keyed by field name (--batch-size: "
                             "batch_size); flags given on the command line override it")
    for f in cli_fields(cls):
        if f.name == CONFIG_DEST:
            raise TypeError(f"{cls.__name__}: a field may not be named {CONFIG_DEST!r} (the CONFIG.yaml argument)")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": _help_text(cls, f)}
        tp = _flag_type(cls, f, hints[f.name])
        if tp is bool:
            if f.default is True and not f.metadata.get("invert"):
                raise TypeError(f"{cls.__name__}.{f.name}: a bool that defaults to True needs an 'invert' flag")
            if f.default is not True and f.metadata.get("invert"):
                raise TypeError(f"{cls.__name__}.{f.name}: 'invert' is for bools that default to True")
            action = "store_false" if f.default is True else "store_true"
            parser.add_argument(*flag_names(f), action=action, **kwargs)
            continue
        for key in ("choices", "metavar"):
            if f.metadata.get(key) is not None:
                kwargs[key] = f.metadata[key]
        parser.add_argument(*flag_names(f), type=tp, **kwargs)


def given_flags(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """{field name: value} of the flags given on the command line (argparse default None)."""
    return {f.name: getattr(args, f.name) for f in cli_fields(cls) if getattr(args, f.name, None) is not None}


def config_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The config of one command: CONFIG.yaml (or the defaults), then the flags given, checked.

    A bad YAML (unknown key, wrong type, a value not allowed) is a ConfigError naming the file,
    the key and its flag; then `check_config` runs on the result.
    """
    path = getattr(args, CONFIG_DEST, None)
    try:
        cfg = load_config(cls, path)
    except ConfigError as e:
        e = _with_flag(cls, e)
        if "expected str, got bool" in e.problem:
            e = ConfigError(e.problem + " (YAML reads unquoted on/off/yes/no as booleans: quote the value, e.g. 'off')",
                            key=e.key, flag=e.flag, file=e.file)
        raise e from None
    cfg = dataclasses.replace(cfg, **given_flags(cls, args))
    check_config(cfg)
    return cfg


def parse_config(cls: type[T], argv: list[str], prog: str | None = None) -> T:
    """`config_from_args` on a parser holding only the flags of `cls` (for tools and tests)."""
    parser = argparse.ArgumentParser(prog=prog)
    add_config_arguments(parser, cls)
    return config_from_args(cls, parser.parse_args(argv))


def check_config(cfg: Any) -> None:
    """A command's config: required settings present, then `sicog.config.check_config` (every
    value within its choices and range, then `cfg.validate()`); errors name the flag and the key.

    Run by `config_from_args` and by the commands' entry points (so a config built in code is
    checked the same way).
    """
    for f in dataclasses.fields(cfg):
        if f.metadata.get("required") and getattr(cfg, f.name) in (None, ""):
            flags = flag_names(f) if f.metadata.get("cli", True) else ()
            raise ConfigError(f"{flags[0]} is required (or `{f.name}:` in CONFIG.yaml)" if flags
                              else f"`{f.name}:` is required in CONFIG.yaml")
    try:
        _config.check_config(cfg)
    except ConfigError as e:
        raise _with_flag(type(cfg), e) from None


def _with_flag(cls: type, e: ConfigError) -> ConfigError:
    """`e` with the flag of its key, when the key is a setting of `cls` that has one."""
    field = next((f for f in cli_fields(cls) if f.name == e.key), None) if e.flag is None else None
    flags = flag_names(field) if field is not None else ()
    return e.at(flag=flags[0]) if flags else e
