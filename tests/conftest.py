"""Test-wide settings (nothing may reach a model hub, runs are deterministic) and the one tiny
checkpoint every test shares."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """Load the plugins as `sicog` does before a command (the demo's stand-ins and caption scorer)."""
    from sicog.cli import load_plugins

    load_plugins()


def pytest_collection_modifyitems(config, items):
    """The `vllm` tests (a real vLLM server, minutes each) run only when asked for by name:
    `pytest -m vllm`. Any other selection, the plain `pytest` included, leaves them out."""
    if "vllm" in (config.option.markexpr or ""):
        return
    keep = [item for item in items if item.get_closest_marker("vllm") is None]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("vllm")])
        items[:] = keep


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """A complete random-init tiny checkpoint folder (default sizes, seed 0), built once per
    session. Tests that change weights or flags load their own copy with `load_checkpoint`."""
    from sicog.model.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt", seed=0)


@pytest.fixture(scope="session")
def tiny(tiny_ckpt):
    """(model, processor) loaded from `tiny_ckpt` in eval mode, shared: read it, never change it."""
    from sicog.model.checkpoint import load_checkpoint

    model, processor = load_checkpoint(tiny_ckpt)
    return model.eval(), processor


@pytest.fixture(scope="session")
def tiny_uhd_ckpt(tmp_path_factory):
    """A complete random-init tiny `arch: uhd` checkpoint (LLaVA-UHD, 16 resampler queries, seed 0)."""
    from sicog.model.tiny import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny_uhd") / "ckpt", seed=0, arch="uhd")


@pytest.fixture(scope="session")
def tiny_uhd(tiny_uhd_ckpt):
    """(model, processor) loaded from `tiny_uhd_ckpt` in eval mode, shared: read it, never change it."""
    from sicog.model.checkpoint import load_checkpoint

    model, processor = load_checkpoint(tiny_uhd_ckpt)
    return model.eval(), processor
