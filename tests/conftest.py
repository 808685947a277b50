"""Test-wide settings (nothing may reach a model hub, runs are deterministic), the one tiny
checkpoint every test shares, and folders built once per test run (shared by pytest-xdist's workers)."""

import fcntl
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """Load the plugins as `sicog` does before a command (the demo's stand-ins and caption scorer).
    Under pytest-xdist (`-n 2`, the README's command) each worker is one of the cores: one torch
    thread per worker, and per process it starts (the tiny models run fastest on one thread, and two
    threads per worker on two cores spin-wait against each other)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)
    from sicog.cli import load_plugins

    load_plugins()


def pytest_collection_modifyitems(config, items):
    """The `vllm` tests (a real vLLM server, minutes each) run only when asked for by name:
    `pytest -m vllm`. Any other selection, the plain `pytest` included, leaves them out. Under
    pytest-xdist the long tests go first."""
    if "vllm" not in (config.option.markexpr or ""):
        keep = [item for item in items if item.get_closest_marker("vllm") is None]
        if len(keep) < len(items):
            config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("vllm")])
            items[:] = keep
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _long_ones_first(items)


def _long_ones_first(items) -> None:
    """Under pytest-xdist, the `slow` and `deepspeed` tests (end to end, a minute or more each) start
    first, so no worker is left running one alone at the end while the other idles. Every worker
    collects, and sorts the same way (a stable sort: the order xdist requires them to agree on)."""
    items.sort(key=lambda item: not (item.get_closest_marker("slow") or item.get_closest_marker("deepspeed")))


@pytest.fixture(scope="session")
def tiny_ckpt(built_once):
    """A complete random-init tiny checkpoint folder (default sizes, seed 0), built once per test
    run. Tests that change weights or flags load their own copy with `load_checkpoint`."""
    from sicog.model.tiny import make_tiny_checkpoint

    return built_once("tiny", lambda folder: make_tiny_checkpoint(folder / "ckpt", seed=0)) / "ckpt"


@pytest.fixture(scope="session")
def tiny(tiny_ckpt):
    """(model, processor) loaded from `tiny_ckpt` in eval mode, shared: read it, never change it."""
    from sicog.model.checkpoint import load_checkpoint

    model, processor = load_checkpoint(tiny_ckpt)
    return model.eval(), processor


@pytest.fixture(scope="session")
def tiny_uhd_ckpt(built_once):
    """A complete random-init tiny `arch: uhd` checkpoint (LLaVA-UHD, 16 resampler queries, seed 0),
    built once per test run."""
    from sicog.model.tiny import make_tiny_checkpoint

    return built_once("tiny_uhd", lambda folder: make_tiny_checkpoint(folder / "ckpt", seed=0, arch="uhd")) / "ckpt"


@pytest.fixture(scope="session")
def tiny_uhd(tiny_uhd_ckpt):
    """(model, processor) loaded from `tiny_uhd_ckpt` in eval mode, shared: read it, never change it."""
    from sicog.model.checkpoint import load_checkpoint

    model, processor = load_checkpoint(tiny_uhd_ckpt)
    return model.eval(), processor


@pytest.fixture(scope="session", autouse=True)
def _own_sicog_cache(tmp_path_factory):
    """SICOG_CACHE_DIR (the stand-ins cache of `sicog demo`/`sicog run`) is a folder of this test
    process, never the user's ~/.cache/sicog: a test sees no cache it did not fill, and two xdist
    workers never build into one folder at once. A test that shares a cache passes its own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICOG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sicog_cache"))
        yield


# ---------------------------------------------------------------------------- built once per test run
def _run_root(tmp_path_factory) -> Path:
    """The folder of this test run that every xdist worker sees: the run's base temp folder (each
    worker's own is a `popen-gwN` folder inside it)."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """`built_once(name, build) -> folder`: the folder `name`, filled by `build(folder)` once per test
    run. The first worker to ask builds it under an exclusive lock, the others wait for the lock and
    reuse it; a build that fails leaves nothing behind, so the next asker tries again. Read it, never
    change it."""
    shared = _run_root(tmp_path_factory) / "built_once"
    shared.mkdir(exist_ok=True)

    def get(name: str, build) -> Path:
        folder, done = shared / name, shared / f"{name}.done"
        with open(shared / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not done.is_file():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                try:
                    build(folder)
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                done.touch()
        return folder

    return get


@pytest.fixture(scope="session")
def smoke_standins_cache(built_once):
    """A SICOG_CACHE_DIR holding the stand-ins `sicog demo --preset smoke` pre-trains first (its
    slowest step). They are keyed by the world's kind and the `standins:` settings, not by the demo's
    seed, and shared by every run like pretrained models: built here once per test run, with the
    preset's own settings and one torch thread as the preset's launcher runs them, so each end-to-end
    demo test finds them in the cache (and checks that it did)."""
    import torch
    import yaml

    from sicog.cli import main as sicog_main
    from sicog.config import config_from_mapping, config_to_dict
    from sicog.demo.cli import preset_config_path
    from sicog.demo.hooks import StandinsSpec
    from sicog.demo.standins import build_standins

    def build(folder: Path) -> None:
        preset = yaml.safe_load(preset_config_path("smoke").read_text())
        world = folder / "world"
        assert sicog_main(["world", "--out", str(world), "--seed", "0", "--no-progress",
                           *preset["demo"]["world_args"]]) == 0
        spec = config_to_dict(config_from_mapping(StandinsSpec, preset["standins"], "standins"))
        spec["cache_dir"] = str(folder / "cache" / "standins")
        threads = torch.get_num_threads()
        torch.set_num_threads(preset["launcher"]["threads"])
        try:
            build_standins(world, folder / "standins", spec)
        finally:
            torch.set_num_threads(threads)
        shutil.rmtree(world)
        shutil.rmtree(folder / "standins")

    return built_once("smoke_standins", build) / "cache"
