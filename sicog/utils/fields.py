"""Config dataclass fields with checked values: fixed choices and numeric ranges.

`choices(values, default)` and `ranged(default, min=..., max=...)` declare a field whose value is
checked when a config is loaded (`sicog.config` calls `check_field` for every field it sets);
a value outside them is a `ConfigError` naming the dotted key, what is allowed and what was
given, e.g. "training.per_device_train_batch_size: must be >= 1, got 0".

Metadata: `{"choices": (...)}` and `{"range": {"min", "max", "min_exclusive", "max_exclusive",
"also"}}` (`also`: special values allowed besides the range, e.g. max_steps -1). A field may
carry both (e.g. a dict whose keys are choices and whose values lie in a range).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

from sicog.utils.io import SicogError


class ConfigError(SicogError):
    """A config file or override is wrong; the message names the file and the dotted key."""


def choices(values: tuple, default: Any = dataclasses.MISSING, metadata: dict | None = None, **kwargs) -> Any:
    """A field whose value (each list item, each dict key; None passes) must be one of `values`."""
    return field(default=default, metadata={"choices": tuple(values), **(metadata or {})}, **kwargs)


def ranged(default: Any = dataclasses.MISSING, *, min: float | None = None, max: float | None = None,
           min_exclusive: bool = False, max_exclusive: bool = False, also: tuple = (), **kwargs) -> Any:
    """A number field (each list item, each dict value; None passes) within [min, max] (an end
    left out when exclusive; None: unbounded), or one of the special values `also`."""
    meta = {"min": min, "max": max, "min_exclusive": min_exclusive, "max_exclusive": max_exclusive,
            "also": tuple(also)}
    return field(default=default, metadata={"range": meta}, **kwargs)


def describe_range(r: dict) -> str:
    """The values a `ranged` field allows, in words: ">= 1", "> 0", "in [0, 1)", "-1 or >= 1"."""
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
            raise ConfigError(f"{at}: must be one of {names}, got {item!r}")


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
            raise ConfigError(f"{at}: must be {describe_range(r)}, got {v!r}")


def check_field(f: dataclasses.Field, value: Any, where: str) -> None:
    """Check `value` of field `f` (at dotted key `where`) against its choices and range, if any."""
    if "choices" in f.metadata:
        check_choice(value, f.metadata["choices"], where)
    if "range" in f.metadata:
        check_range(value, f.metadata["range"], where)
