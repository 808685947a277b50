"""Path checks shared by the commands: an output must never overwrite or nest with an input.

`check_outputs_apart(outputs, inputs)` is called by a command before it writes anything, with
its output paths and its input paths, each keyed by the config key or flag that named it, e.g.::

    check_outputs_apart({"training.output_dir": cfg.training.output_dir},
                        {"model.checkpoint": cfg.model.checkpoint,
                         "data.sources[0].path": src.path})

Paths are compared after resolving symlinks (`Path.resolve`; a path that does not exist yet is
resolved as far as it exists), so a link to a folder is that folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from sicog.utils.io import SicogError

PathLike = str | os.PathLike


def _resolved(path: PathLike) -> Path:
    return Path(os.path.expanduser(os.fspath(path))).resolve(strict=False)


def _relation(out: Path, inp: Path) -> str | None:
    """How output `out` overlaps input `inp` ("is", "is inside", "contains"), or None."""
    if out == inp:
        return "is"
    if inp in out.parents:
        return "is inside"
    if out in inp.parents:
        return "contains"
    return None


def check_outputs_apart(outputs: dict[str, PathLike | None], inputs: dict[str, PathLike | None]) -> None:
    """Raise SicogError when an output path equals, contains or lies inside an input path.

    `outputs` and `inputs` map a name (the config key or flag that gave the path, used in the
    message) to a path: a file or a folder, existing or not. None or "" values are ignored, so a
    caller may pass optional settings as they are. Symlinks are resolved before comparing. The
    message names both keys and both paths, e.g. "training.output_dir (runs/x) is inside
    model.checkpoint (runs/x/..): ...". Checks only; creates and reads nothing.
    """
    ins = [(name, p, _resolved(p)) for name, p in inputs.items() if p not in (None, "")]
    for out_name, out_path in outputs.items():
        if out_path in (None, ""):
            continue
        out = _resolved(out_path)
        for in_name, in_path, inp in ins:
            how = _relation(out, inp)
            if how is not None:
                shown_in = f"{in_path}" if str(inp) == os.fspath(in_path) else f"{in_path} -> {inp}"
                shown_out = f"{out_path}" if str(out) == os.fspath(out_path) else f"{out_path} -> {out}"
                raise SicogError(
                    f"{out_name} ({shown_out}) {how} {in_name} ({shown_in}): an output must not be, "
                    f"contain or lie inside an input (it would overwrite or mix with it); choose "
                    f"another {out_name}")
