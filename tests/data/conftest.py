"""Fixtures of the data tests: one tiny checkpoint (model + processor), the processor."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(model, processor) of a random-init tiny LLaVA checkpoint, built once per session."""
    from sicog.model.checkpoint import load_checkpoint, make_tiny_checkpoint

    path = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-data") / "ckpt", seed=0)
    model, processor = load_checkpoint(path)
    model.eval()
    return model, processor


@pytest.fixture
def processor(tiny):
    return tiny[1]
