"""Images stored inside a data file (parquet's `{"bytes": ..., "path": ...}`) written out once.

LLaVA-ReCap-558K / 118K ship each image's bytes in the parquet row. `--extract-images-to DIR`
writes every such image to `DIR/<h[:2]>/<h>.<ext>`, h the sha256 of its bytes (first 32 hex
digits) and ext told from the bytes (or the stored name): identical bytes give the same file,
written once, and a second run finds every file already there and writes nothing. Each file is
written under a temporary name and renamed, without an fsync per file (558K fsyncs would take
longer than the conversion): a file damaged by a crash holds other bytes than its name says, so
the next run finds it and writes it again (counted as `rewritten`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from sicog.data.records import DataError

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
        self.rewritten = 0  # files that held other bytes than their name says (a crash): written again

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
        if path.is_dir():
            raise DataError(f"{where}: key 'image': {path} is a folder; choose another --extract-images-to")
        if path.exists():
            if path.stat().st_size == len(data) and path.read_bytes() == data:
                self.present += 1
                return
            self.rewritten += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self.written += 1
