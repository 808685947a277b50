"""Fixtures of the data tests: the processor of the shared tiny checkpoint (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def processor(tiny):
    return tiny[1]
