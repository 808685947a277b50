"""Checks on weight files that read their headers only (a leaf: the checkpoint, build and
conversion code all use it)."""

from __future__ import annotations

from pathlib import Path


def safetensors_error(path) -> str | None:
    """None when `path` is a readable safetensors file: its header parses and its data covers
    every tensor the header lists (a truncated or overwritten file fails); else the error, as
    "Type: message". Reads the header only."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt"):
            return None
    except Exception as e:  # noqa: BLE001 - SafetensorError (bad header, short file) or OSError
        return f"{type(e).__name__}: {e}"


def safetensors_problem(path) -> str | None:
    """`safetensors_error` as a sentence naming the file (None when the file is whole)."""
    err = safetensors_error(path)
    return None if err is None else f"{Path(path).name} is not a readable safetensors file ({err})"
