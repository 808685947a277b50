"""The data layer's error (a leaf module: the readers of every format raise it)."""

from __future__ import annotations

from sicog.utils.io import SicogError


class DataError(SicogError):
    """A data file is malformed; the message names file:line and the key at fault."""
