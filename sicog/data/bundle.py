"""A data bundle: a folder whose `manifest.json` names its files (the synthetic world is one).

`manifest.json` maps file keys (`alignment`, `annotated_captions`, `benchmark`, ...) to paths
relative to the folder, plus whatever settings the writer records (seed, sizes, fingerprints).
Any writer of such a folder - the built-in world or a user's own generator - is read here, so
the pipeline (`data.world`), `sicog evaluate --benchmark world:DIR` and the demo share one reader.
"""

from __future__ import annotations

import json
from pathlib import Path

from sicog.utils.io import SicogError

MANIFEST = "manifest.json"


def read_manifest(folder: str | Path) -> dict:
    """The folder's manifest.json as a mapping; errors name the file (and line for bad JSON)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise SicogError(f"{path} not found (not a data bundle; write a world with `sicog world --out {folder}`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise SicogError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise SicogError(f"{path}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    if not isinstance(manifest, dict):
        raise SicogError(f"{path}: expected a JSON object")
    return manifest


def bundle_files(folder: str | Path, manifest: dict | None = None) -> dict[str, Path]:
    """Every file key of the manifest -> absolute path (keys whose value is a string path)."""
    folder = Path(folder)
    manifest = read_manifest(folder) if manifest is None else manifest
    files = manifest.get("files", manifest)  # older writers nested the paths under "files"
    return {k: (folder / v).resolve() for k, v in files.items()
            if isinstance(v, str) and k != "format_version"}


def bundle_file(folder: str | Path, key: str, manifest: dict | None = None) -> Path:
    """One file of the bundle; an error names the manifest and the missing key."""
    files = bundle_files(folder, manifest)
    if key not in files:
        raise SicogError(f"{Path(folder) / MANIFEST}: missing key {key!r}")
    return files[key]
