"""Import VLMEvalKit where torchvision cannot be imported (a CPU-only torch).

`import vlmeval` imports torchvision at the top of ~25 modules (video datasets, other models'
wrappers), although image multiple-choice and open-ended datasets and `SicogLLaVA` never call
it. PyPI's Linux torchvision wheels are built against the CUDA torch and fail beside the CPU one
("operator torchvision::nms does not exist"), so on a CPU-only install VLMEvalKit cannot be
imported at all. `import_vlmeval()` then imports it with an empty stand-in for torchvision: every
name the modules take from it at import time is a placeholder, and any module that imports
torchvision later gets the real ImportError. What needs torchvision (video datasets, InternVL
and the like) still needs a working torchvision; nothing is silently computed without it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import types

log = logging.getLogger(__name__)

PACKAGE = "torchvision"


class Placeholder:
    """A name imported from the missing torchvision: any attribute or call is another one."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Placeholder(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        return Placeholder(f"{self._name}(...)")

    def __mro_entries__(self, bases):  # `class X(torchvision.Thing)` at import time
        return (object,)

    def __repr__(self) -> str:
        return f"<{self._name}: torchvision is not installed>"


class _StandInModule(types.ModuleType):
    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Placeholder(f"{self.__name__}.{attr}")


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StandInModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def _forget(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def torchvision_error() -> str | None:
    """Why torchvision cannot be imported here, or None when it can."""
    try:
        import torchvision  # noqa: F401
    except Exception as e:  # ImportError, or RuntimeError from a wheel built for another torch
        _forget(PACKAGE)
        return f"{type(e).__name__}: {e}"
    return None


def import_vlmeval():
    """`import vlmeval`, with a torchvision stand-in when torchvision cannot be imported."""
    if "vlmeval" in sys.modules:
        return sys.modules["vlmeval"]
    reason = torchvision_error()
    if reason is None:
        import vlmeval

        return vlmeval
    log.warning("torchvision cannot be imported (%s); importing VLMEvalKit without it: image datasets and "
                "SicogLLaVA work, whatever needs torchvision (video datasets, some models) fails", reason)
    # transformers decides once, on import, whether torchvision is there: let it see the truth
    import transformers.utils.import_utils  # noqa: F401

    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    try:
        import vlmeval
    finally:
        sys.meta_path.remove(finder)
        _forget(PACKAGE)  # a later `import torchvision` raises the real ImportError
    return vlmeval
