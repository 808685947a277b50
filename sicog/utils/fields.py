"""One way to declare a config setting, one check of its value, one error that says where it is.

Every setting of every config dataclass (the command configs whose flags sicog.config_flags
generates, and the YAML configs of sicog.config) is declared once, as a field:

    n: int = setting(6, "candidates per item", min=1, flags=("--n", "--num-candidates"))
    warmup_ratio: float = setting(0.03, "a fraction of the steps", min=0, max=1, max_exclusive=True)

`setting(default, help, *, ...)` is `dataclasses.field` with the metadata below, in one shape for
every config. `check_field` checks a value against its field's choices and range;
`sicog.config.check_config` runs it on every field of a config, whatever the value came from
(YAML, a flag, `--set`, code). The type itself is checked by the loader (`sicog.config`).

Metadata keys:

    help      what the setting means (a flag's help text; required for a flag)
    choices   the allowed values, a tuple (a list: each item; a dict: each key; None passes)
    range     {"min", "max", "min_exclusive", "max_exclusive", "also"}: a number (a list: each
              item; a dict: each value; None passes) within [min, max] (an end left out when
              exclusive; None: unbounded; never NaN or infinite), or one of the special values
              `also` (e.g. max_steps -1)
    flags, metavar, required, invert, cli
              command-line metadata, read by sicog.config_flags (see there)

A bad value is a `ConfigError` carrying where it is - `key` (the dotted YAML key), `flag` (the
command-line spelling, when a command reads the setting from one) and `file` - and its message
is rendered from them: "x.yaml: key n (--n): must be >= 1, got 0", "--n (n): must be >= 1, got 0",
"training.seed: must be in [0, 4294967295], got -1".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from sicog.utils.io import SicogError

#: the metadata keys `setting` writes (sicog.config_flags reads the command-line ones)
METADATA_KEYS = frozenset({"help", "choices", "range", "flags", "metavar", "required", "invert", "cli"})


class ConfigError(SicogError):
    """A config value (file, override, flag, code) is wrong.

    `problem` says what is wrong; `key` (dotted YAML key), `flag` and `file` say where. A message
    given whole (no key) is kept as it is, for errors about a file as a whole.
    """

    def __init__(self, problem: str, *, key: str | None = None, flag: str | None = None,
                 file: str | None = None):
        self.problem, self.key, self.flag, self.file = problem, key, flag, file
        super().__init__(self.render())

    def render(self) -> str:
        if self.key and self.file:
            return f"{self.file}: key {self.key}{f' ({self.flag})' if self.flag else ''}: {self.problem}"
        if self.key and self.flag:  # from the command line or code: the flag is what the user typed
            return f"{self.flag} ({self.key}): {self.problem}"
        place = self.key or self.flag
        if self.file:
            place = f"{self.file}: {place}" if place else self.file
        return f"{place}: {self.problem}" if place else self.problem

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self):  # keyword-only places: pickled (e.g. across processes) by fields
        return _config_error, (self.problem, self.key, self.flag, self.file)

    def at(self, *, key: str | None = None, flag: str | None = None, file: str | None = None,
           within: str = "") -> ConfigError:
        """A copy with the places not yet known filled in; `within` prefixes the key (a section)."""
        new_key = self.key or key
        if within and new_key:
            new_key = f"{within}{'' if new_key.startswith('[') else '.'}{new_key}"
        return ConfigError(self.problem, key=new_key, flag=self.flag or flag, file=self.file or file)


def _config_error(problem, key, flag, file) -> ConfigError:
    return ConfigError(problem, key=key, flag=flag, file=file)


def setting(default: Any = dataclasses.MISSING, help: str | None = None, *, choices: tuple | None = None,
            min: float | None = None, max: float | None = None, min_exclusive: bool = False,
            max_exclusive: bool = False, also: tuple = (), flags: tuple[str, ...] | None = None,
            metavar: str | None = None, required: bool = False, invert: str | None = None, cli: bool = True,
            default_factory: Callable[[], Any] | Any = dataclasses.MISSING) -> Any:
    """A config field: default (or default_factory), help, allowed values, command-line spelling."""
    meta: dict[str, Any] = {}
    if help is not None:
        meta["help"] = help
    if choices is not None:
        meta["choices"] = tuple(choices)
    if min is not None or max is not None or also:
        meta["range"] = {"min": min, "max": max, "min_exclusive": min_exclusive,
                         "max_exclusive": max_exclusive, "also": tuple(also)}
    for key, value, unset in (("flags", flags, None), ("metavar", metavar, None), ("required", required, False),
                              ("invert", invert, None), ("cli", cli, True)):
        if value != unset:
            meta[key] = value
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe_range(r: dict) -> str:
    """The values a range allows, in words: ">= 1", "> 0", "in [0, 1)", "-1 or >= 1"."""
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    lo, hi = r["min"], r["max"]
    if lo is not None and hi is not None:
        text = f"in {'(' if r['min_exclusive'] else '['}{num(lo)}, {num(hi)}{')' if r['max_exclusive'] else ']'}"
    elif lo is not None:
        text = f"{'>' if r['min_exclusive'] else '>='} {num(lo)}"
    elif hi is not None:
        text = f"{'<' if r['max_exclusive'] else '<='} {num(hi)}"
    else:
        text = "a finite number"
    return " or ".join([*(num(a) for a in r["also"]), text])


def _items(value: Any, where: str, keys: bool) -> list[tuple[str, Any]]:
    """(dotted place, item) for a scalar, each list item, each dict key (keys) or value."""
    if isinstance(value, dict):
        return [(f"{where}.{k}", k if keys else v) for k, v in value.items()]
    if isinstance(value, list):
        return [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    return [(where, value)]


def check_choice(value: Any, allowed: tuple, where: str) -> None:
    """`value` (a list: each item; a dict: each key; None: fine) must be one of `allowed`."""
    if value is None:
        return
    for at, item in _items(value, where, keys=True):
        # compared with their types: 1 == True, but `bf16: 1` is not `bf16: true`
        if not any(item == a and type(item) is type(a) for a in allowed):
            names = ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)  # YAML
            raise ConfigError(f"must be one of {names}, got {item!r}", key=at)


def check_range(value: Any, r: dict, where: str) -> None:
    """`value` (a list: each item; a dict: each value; None: fine) must lie in the range `r`."""
    if value is None:
        return
    for at, v in _items(value, where, keys=False):
        if v is None or (v in r["also"] and not isinstance(v, bool)):
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        ok = ok and (r["min"] is None or (v > r["min"] if r["min_exclusive"] else v >= r["min"]))
        ok = ok and (r["max"] is None or (v < r["max"] if r["max_exclusive"] else v <= r["max"]))
        if not ok:
            raise ConfigError(f"must be {describe_range(r)}, got {v!r}", key=at)


def check_field(f: dataclasses.Field, value: Any, where: str) -> None:
    """Check `value` of field `f` (at dotted key `where`) against its choices and range, if any."""
    if "choices" in f.metadata:
        check_choice(value, f.metadata["choices"], where)
    if "range" in f.metadata:
        check_range(value, f.metadata["range"], where)
