"""Image loading for training and sampling: RGB PIL images, errors that name the record.

A missing, unreadable or truncated image is a `DataError` naming the record (`where`, i.e.
file:line of the data file) and the image path, so a 600k-record run that meets one bad file
says exactly which line to fix (or, with `data.on_error: skip`, which record was skipped).

Confinement (`resolve_image`): a record's image path is relative to its image folder and must
stay inside it once symlinks are followed. An absolute path, a `..` that climbs out, or a
symlink to a file elsewhere is a DataError naming the record, unless the run explicitly allows
images outside the folder (`--allow-images-outside-folder`, `data.allow_images_outside_folder`).
Records are data, and data from elsewhere must not make a run read (or, for an HTTP backend,
upload) any file the user did not put in the image folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sicog.data.records import DataError

#: the flag / config key that lets image paths leave their folder (named in the errors)
ALLOW_OUTSIDE = "--allow-images-outside-folder"


def confine(folder: str | os.PathLike | None, path: str | os.PathLike, where: str) -> Path:
    """`path` with symlinks resolved; DataError naming `where` unless it lies inside `folder`
    (None: the working directory)."""
    base = Path(folder if folder is not None else ".").resolve()
    real = Path(path).resolve()
    if real != base and base not in real.parents:
        raise DataError(f"{where}: key 'image': {path} resolves to {real}, outside the image folder {base} "
                        f"(symlinks followed); image paths must stay inside it (or pass {ALLOW_OUTSIDE})")
    return real


def resolve_image(folder: str | os.PathLike | None, rel: str, where: str, allow_outside: bool = False) -> Path:
    """Where a record's image `rel` lives: inside `folder` (see the module docstring)."""
    p = Path(rel)
    if p.is_absolute() and not allow_outside:
        raise DataError(f"{where}: key 'image': {rel!r} is an absolute path; image paths are relative to "
                        f"the image folder (or pass {ALLOW_OUTSIDE})")
    path = p if p.is_absolute() or folder is None else Path(folder) / p
    return path if allow_outside else confine(folder, path, where)


def load_image(path: str | os.PathLike, where: str) -> Image.Image:
    """Open `path` fully decoded as an RGB image; raise DataError naming `where` and the path.

    The pixels are decoded here (not lazily by PIL later) so a truncated or corrupt file fails
    at this call, where the record is still known, rather than deep inside the image processor.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        # OSError covers truncated files ("image file is truncated"); SyntaxError/ValueError are
        # what some PIL plugins raise on malformed headers.
        raise DataError(f"{where}: unreadable image {path}: {type(e).__name__}: {e}") from None
