"""Path checks shared by the commands: an output must never overwrite or nest with an input.

`check_outputs_apart(outputs, inputs)` is called by a command before it writes anything, with
its output paths and its input paths, each keyed by the config key or flag that named it, e.g.::

    check_outputs_apart({"training.output_dir": cfg.training.output_dir},
                        {"model.checkpoint": cfg.model.checkpoint,
                         "data.sources[0].path": src.path})

The outputs are checked against each other the same way (two outputs of one command that are the
same file, or one inside the other, would lose a stream): list every file a command writes, its
summary included. Paths are compared after resolving symlinks (`Path.resolve`; a path that does not exist yet is
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


def _shown(given: PathLike, resolved: Path) -> str:
    return f"{given}" if str(resolved) == os.fspath(given) else f"{given} -> {resolved}"


def check_outputs_apart(outputs: dict[str, PathLike | None], inputs: dict[str, PathLike | None]) -> None:
    """Raise SicogError when an output path equals, contains or lies inside an input path, or
    another output path.

    `outputs` and `inputs` map a name (the config key or flag that gave the path, used in the
    message) to a path: a file or a folder, existing or not. None or "" values are ignored, so a
    caller may pass optional settings as they are. Symlinks are resolved before comparing. The
    message names both keys and both paths, e.g. "training.output_dir (runs/x) is inside
    model.checkpoint (runs/x/..): ...". Checks only; creates and reads nothing.
    """
    ins = [(name, p, _resolved(p)) for name, p in inputs.items() if p not in (None, "")]
    outs = [(name, p, _resolved(p)) for name, p in outputs.items() if p not in (None, "")]
    for i, (out_name, out_path, out) in enumerate(outs):
        for in_name, in_path, inp in ins:
            how = _relation(out, inp)
            if how is not None:
                raise SicogError(
                    f"{out_name} ({_shown(out_path, out)}) {how} {in_name} ({_shown(in_path, inp)}): an output "
                    f"must not be, contain or lie inside an input (it would overwrite or mix with it); choose "
                    f"another {out_name}")
        for other_name, other_path, other in outs[i + 1:]:
            how = _relation(other, out)
            if how is not None:
                raise SicogError(
                    f"{other_name} ({_shown(other_path, other)}) {how} {out_name} ({_shown(out_path, out)}): two "
                    f"outputs of one command must be different files, neither inside the other (one would "
                    f"overwrite the other); choose another {other_name}")
