"""Optional GPU kernels fall back, with the reason logged, where they cannot run (this CPU)."""

from __future__ import annotations

import logging

import pytest
import torch

from sicog.model import kernels
from sicog.model.assembly import resolve_attn_implementation

needs_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback without a GPU")


@needs_cpu_only
def test_flash_attention_falls_back_to_sdpa_saying_why(caplog):
    with caplog.at_level(logging.INFO, logger="sicog.model.build"):
        assert resolve_attn_implementation("flash_attention_2") == "sdpa"
        assert resolve_attn_implementation("auto") == "sdpa"
    assert "falling back to sdpa: no CUDA device" in caplog.text
    assert "auto -> sdpa (flash_attention_2 unavailable: no CUDA device)" in caplog.text
    assert resolve_attn_implementation("eager") == "eager"


@needs_cpu_only
def test_liger_falls_back_saying_why(caplog):
    with caplog.at_level(logging.INFO, logger="sicog.model.kernels"):
        assert kernels.use_liger(False) is False
        assert caplog.text == ""  # not asked for: nothing to say
        assert kernels.use_liger(True) is False
    assert "training.liger_kernels: true, but falling back to stock transformers: no CUDA device" in caplog.text


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(kernels.importlib.util, "find_spec", lambda name: None)
    assert "flash-attn package is not installed" in kernels.flash_attention_problem()
    assert "liger-kernel package is not installed" in kernels.liger_problem()
