"""Images stored inside a data file (parquet's `{"bytes": ..., "path": ...}`) written out once.

LLaVA-ReCap-558K / 118K ship each image's bytes in the parquet row. `--extract-images-to DIR`
writes every such image to `DIR/<h[:2]>/<h>.<ext>`, h the sha256 of its bytes (first 32 hex
digits) and ext told from the bytes (or the stored name): identical bytes give the same file,
written once, and a second run finds every file already there and writes nothing. A file whose
name is taken by other bytes (a changed file, a collision) is an error naming both.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sicog.data.records import DataError
from sicog.utils.io import atomic_write

_MAGIC = ((b"\xff\xd8\xff", ".jpg"), (b"\x89PNG\r\n\x1a\n", ".png"), (b"GIF87a", ".gif"), (b"GIF89a", ".gif"),
          (b"BM", ".bmp"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))
_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}


def is_embedded(image: object) -> bool:
    """Whether a record's `image` value is a stored image (a dict with its bytes)."""
    return isinstance(image, dict) and isinstance(image.get("bytes"), (bytes, bytearray))


def image_suffix(data: bytes, stored_name: str | None) -> str:
    """The file suffix of an image: from its first bytes, else from its stored name, else .img."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    suffix = Path(stored_name or "").suffix.lower()
    return suffix if suffix in _SUFFIXES else ".img"


class ImageExtractor:
    """Writes stored images under `folder` (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.written = 0  # files written by this run
        self.present = 0  # images already there with the same bytes

    def name_for(self, image: dict) -> str:
        """Where `image` goes, relative to the folder."""
        data = bytes(image["bytes"])
        digest = hashlib.sha256(data).hexdigest()[:32]
        stored = image.get("path") if isinstance(image.get("path"), str) else None
        return f"{digest[:2]}/{digest}{image_suffix(data, stored)}"

    def write(self, image: dict, name: str, where: str) -> None:
        """Write `image`'s bytes to `name` unless that file already holds them."""
        data = bytes(image["bytes"])
        path = self.folder / name
        if path.exists():
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                self.present += 1
                return
            raise DataError(f"{where}: key 'image': {path} already exists with other bytes; "
                            f"remove it or choose another --extract-images-to")
        with atomic_write(path, "wb") as fh:
            fh.write(data)
        self.written += 1
