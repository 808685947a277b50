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

Decoding (`open_image`, `load_image`, `to_rgb`): the one way training, sampling and evaluation
turn a file or bytes into the RGB image a processor gets. PIL's own `convert("RGB")` clips a
16-bit greyscale image ('I;16', common for medical and scientific scans) to black and white, so
high-bit-depth modes are scaled to 8 bits first; transparency is composited over white. An image
above a pixel cap, or above PIL's decompression-bomb limit, is refused from its header, before
any pixel is decoded.

Guarding (`image_file`, `ImageError`): every image is opened through this module, which first
checks the path is a regular file: a NUL byte, a symlink loop, a 300-character name, a folder, a
FIFO (a reader would block for ever) or a device is an ImageError naming the record and saying
which (`kind`, for counting), never a traceback or a hang. `max_pixels_in_folder` reads a
checkpoint's pixel cap from its processor file, so commands check image headers against it
before a model loads.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from sicog.data.records import DataError

#: the flag / config key that lets image paths leave their folder (named in the errors)
ALLOW_OUTSIDE = "--allow-images-outside-folder"


@functools.lru_cache(maxsize=64)
def _resolved_folder(folder: str, cwd: str) -> Path:
    return (Path(cwd) / folder).resolve()


class ImageError(DataError):
    """A record's image cannot be used; `kind` says why, for counting: one of OUTSIDE, NOT_FOUND,
    BAD_PATH (a NUL, a symlink loop, a name too long), NOT_A_FILE (a folder, a FIFO, a device),
    TOO_LARGE, UNREADABLE."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


OUTSIDE, NOT_FOUND, BAD_PATH, NOT_A_FILE, TOO_LARGE, UNREADABLE = (
    "outside the image folder", "not found", "bad path", "not a regular file", "too large", "unreadable")


def _path_problem(e: BaseException) -> tuple[str, str]:
    """(kind, why) of an exception raised while resolving or stat-ing an image path."""
    if isinstance(e, ValueError):
        return BAD_PATH, "the path contains a NUL byte"
    if isinstance(e, RuntimeError) or getattr(e, "errno", None) == errno.ELOOP:
        return BAD_PATH, "a symlink loop"
    if getattr(e, "errno", None) == errno.ENAMETOOLONG:
        return BAD_PATH, "a file name too long for the file system"
    if getattr(e, "errno", None) in (errno.ENOENT, errno.ENOTDIR):
        return NOT_FOUND, "image not found"
    return UNREADABLE, f"cannot be read ({getattr(e, 'strerror', None) or e})"


def _resolve(path: Path, where: str) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError) as e:
        kind, why = _path_problem(e)
        raise ImageError(f"{where}: key 'image': {str(path)!r}: {why}", kind) from None


def image_file(path: str | os.PathLike, where: str) -> Path:
    """`path`, checked to be a regular file (symlinks followed) before anything opens it: a NUL, a
    symlink loop, a name too long, a missing file, a folder, a FIFO (which would block a reader for
    ever) or a device is an ImageError naming `where` and the path."""
    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:
        kind, why = _path_problem(e)
        raise ImageError(f"{where}: image not found: {path}" if kind == NOT_FOUND else
                         f"{where}: image {str(path)!r}: {why}", kind) from None
    if not stat.S_ISREG(st.st_mode):
        what = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "a device")
        raise ImageError(f"{where}: image {path} is {what}, not a regular file", NOT_A_FILE)
    return Path(path)


def confine(folder: str | os.PathLike | None, path: str | os.PathLike, where: str) -> Path:
    """`path` with symlinks resolved; DataError naming `where` unless it lies inside `folder`
    (None: the working directory)."""
    try:  # the folder is resolved once per run (cached); a bad one is reported by _resolve
        base = _resolved_folder(os.fspath(folder if folder is not None else "."), os.getcwd())
    except (OSError, RuntimeError, ValueError):
        base = _resolve(Path(folder if folder is not None else "."), where)
    real = _resolve(Path(path), where)
    if real != base and base not in real.parents:
        raise ImageError(f"{where}: key 'image': {path} resolves to {real}, outside the image folder {base} "
                         f"(symlinks followed); image paths must stay inside it (or pass {ALLOW_OUTSIDE})", OUTSIDE)
    return real


def resolve_image(folder: str | os.PathLike | None, rel: str, where: str, allow_outside: bool = False) -> Path:
    """Where a record's image `rel` lives: inside `folder` (see the module docstring)."""
    p = Path(rel)
    if "\0" in str(rel):
        raise ImageError(f"{where}: key 'image': {rel!r}: the path contains a NUL byte", BAD_PATH)
    if p.is_absolute() and not allow_outside:
        raise ImageError(f"{where}: key 'image': {rel!r} is an absolute path; image paths are relative to "
                         f"the image folder (or pass {ALLOW_OUTSIDE})", OUTSIDE)
    path = p if p.is_absolute() or folder is None else Path(folder) / p
    return path if allow_outside else confine(folder, path, where)


#: modes whose values go above 255: scaled by their range, not clipped (see `to_rgb`)
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
#: the exceptions PIL raises for a file it cannot decode (truncated: OSError; bad headers:
#: SyntaxError / ValueError in some plugins)
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB. 16-bit greyscale is divided by 65535 (32-bit integer and float
    images by 255, or by 65535 when a value is above 255), so it keeps its grey levels instead of
    PIL's clip to black / white; RGBA, LA and transparent palettes are composited over white; CMYK,
    palette, greyscale and 1-bit convert as PIL does. (`sicog/model/uhd/image_processing_uhd.py`
    carries the same function for checkpoints loaded without sicog; a test keeps them equal.)"""
    if image.mode in HIGH_BIT_MODES:
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or (arr.size and arr.max() > 255) else 255.0
        image = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


#: above this aspect ratio a centre-cropping processor gets the image's centre square (see below)
STRIP_ASPECT = 4.0


def centre_square_for_crop(processor, image: Image.Image) -> Image.Image:
    """What a centre-cropping image processor (CLIP, LLaVA-1.5 without pad-to-square) should get.

    Its resize scales the short side to the crop size before cropping, so a 1x4000 strip becomes
    336 x 1,344,000 pixels (4.7 GB and 15 s for one image, measured; 11 GB for 2x20000) to keep
    336 x 336 of them. The crop keeps exactly the pixels of the original's centre square, so above
    `STRIP_ASPECT` that square goes in instead (the same crop, up to resampling at its edge).
    Other images and processors that pad or slice (uhd) are left as they are.
    """
    ip = getattr(processor, "image_processor", processor)
    if not getattr(ip, "do_center_crop", False) or getattr(ip, "do_pad", False):
        return image
    w, h = image.size
    if max(w, h) <= STRIP_ASPECT * min(w, h):
        return image
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def _check_pixels(size: tuple[int, int], max_pixels: int | None, where: str, name: str) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit and (max_pixels is None or max_pixels < size[0] * size[1]):
        raise ImageError(f"{where}: image {name} is {size[0]}x{size[1]} = {size[0] * size[1]} pixels, above PIL's "
                         f"decompression-bomb limit of {limit}: refused from its header, nothing decoded", TOO_LARGE)
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"{where}: image {name} is {size[0]}x{size[1]} = {size[0] * size[1]} pixels, above the "
                         f"limit of {max_pixels} (raise the model's max_pixels to allow it)", TOO_LARGE)


def _opened(source: str | os.PathLike | bytes, where: str):
    """Image.open of a checked file (`image_file`) or of bytes, with PIL's bomb warning an error."""
    if not isinstance(source, bytes):
        image_file(source, where)
    return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)


def open_image(source: str | os.PathLike | bytes, where: str, max_pixels: int | None = None) -> Image.Image:
    """A file or encoded bytes, fully decoded, as RGB (`to_rgb`); ImageError naming `where` if the
    file is no regular file (`image_file`), does not decode, or holds more than `max_pixels` or
    PIL's decompression-bomb limit (read from the header: nothing is decoded)."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _opened(source, where) as img:
                _check_pixels(img.size, max_pixels, where, name)
                img.load()  # decoded here, where the record is known, not lazily inside a processor
                return to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{where}: image {name} is too large to decode safely: {e}", TOO_LARGE) from None
    except DataError:
        raise
    except DECODE_ERRORS as e:
        raise ImageError(f"{where}: unreadable image {name}: {type(e).__name__}: {e}", UNREADABLE) from None


def load_image(path: str | os.PathLike, where: str, max_pixels: int | None = None) -> Image.Image:
    """`open_image` of a file that must exist (ImageError naming `where` and the path if not)."""
    return open_image(path, where, max_pixels)


def image_header(path: str | os.PathLike | bytes, where: str,
                 max_pixels: int | None = None) -> tuple[tuple[int, int], str]:
    """((width, height), format) from the header alone, of a checked file (`image_file`) or of
    encoded bytes; ImageError
    naming `where` if it cannot be read or is above `max_pixels` / PIL's decompression-bomb limit."""
    name = "<bytes>" if isinstance(path, bytes) else str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _opened(path, where) as im:
                _check_pixels(im.size, max_pixels, where, name)
                return im.size, im.format
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{where}: image {name} is too large to decode safely: {e}", TOO_LARGE) from None
    except DataError:
        raise
    except DECODE_ERRORS as e:
        raise ImageError(f"{where}: unreadable image {name}: {type(e).__name__}: {e}", UNREADABLE) from None


def image_size(path: str | os.PathLike, where: str) -> tuple[int, int]:
    """(width, height) from the header alone (`image_header`)."""
    return image_header(path, where)[0]


#: the class name sicog's uhd image processor is saved under (`image_processor_type`; a test keeps
#: it equal to sicog.model.uhd.image_processing_uhd.SicogUhdImageProcessor's name)
UHD_IMAGE_PROCESSOR = "SicogUhdImageProcessor"


def max_pixels_in_folder(folder: str | os.PathLike | None) -> int | None:
    """The pixel cap (`slices.max_pixels_of`) of the processor that checkpoint `folder` would load,
    read from its processor_config.json without loading anything, so that `sample` and `evaluate`
    refuse an over-limit image from its header before a model loads. None: no cap, not a folder
    (a served model), or no processor file (loading reports that)."""
    if folder is None or not Path(folder).is_dir():
        return None
    for name in ("processor_config.json", "preprocessor_config.json"):
        try:
            cfg = json.loads((Path(folder) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        ip = cfg.get("image_processor", cfg) if isinstance(cfg, dict) else None
        if isinstance(ip, dict) and ip.get("image_processor_type") == UHD_IMAGE_PROCESSOR:
            cap = ip.get("max_pixels")
            return cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None
    return None
