"""Image loading for training and sampling: RGB PIL images, errors that name the record.

A missing, unreadable or truncated image is a `DataError` naming the record (`where`, i.e.
file:line of the data file) and the image path, so a 600k-record run that meets one bad file
says exactly which line to fix (or, with `data.on_error: skip`, which record was skipped).
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from sicog.data.records import DataError


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
