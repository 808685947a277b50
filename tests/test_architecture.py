"""The shape of the package: the demo is a client nobody imports, layers point down, no import
cycle, no module over 500 lines (a guard against sprawl: modules split by topic, never to fit it).
Imports are read from the source (every `import`, also inside functions; only those under `if
TYPE_CHECKING:` are left out), so a lazy import counts like any other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sicog"
MAX_LINES = 500
# Each layer may import itself and the layers after it in this order, never one before it.
LAYERS = ["cli", "demo", "pipeline", "stages", "eval", "model", "data", "config", "utils"]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST):
    """Every node of `tree` except those under `if TYPE_CHECKING:` (imports for annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in (child, *_runtime_nodes(child)))
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(path: Path) -> set[str]:
    """Names of the sicog modules `path` imports at run time, lazy imports inside functions
    included (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = _runtime_nodes(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                pkg = _module_name(path).split(".")
                pkg = pkg[: len(pkg) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join(pkg + [node.module])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {n for n in found if n == "sicog" or n.startswith("sicog.")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cli"


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_nothing_outside_the_demo_imports_it():
    offenders = [f"{p.relative_to(PACKAGE.parent)} imports {m}" for p in _sources()
                 if _layer(_module_name(p)) not in ("demo", "cli", "__main__")
                 for m in _imports(p) if m == "sicog.demo" or m.startswith("sicog.demo.")]
    assert not offenders, "\n".join(offenders)


def test_the_walk_sees_a_forbidden_import(tmp_path, monkeypatch):
    # a package of its own under tmp_path: writing into sicog/ would race the other tests' walks
    bad = tmp_path / "sicog" / "eval" / "_probe_import.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("def f():\n    from sicog.demo.world import vocab\n")
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path / "sicog")
    with pytest.raises(AssertionError, match="_probe_import"):
        test_nothing_outside_the_demo_imports_it()


def test_layers_point_down():
    order = {name: i for i, name in enumerate(LAYERS)}
    offenders = []
    for path in _sources():
        here = _layer(_module_name(path))
        if here not in order:
            continue
        for m in _imports(path):
            there = _layer(m)
            if there in order and order[there] < order[here]:
                offenders.append(f"{path.relative_to(PACKAGE.parent)} ({here}) imports {m} ({there})")
    assert not offenders, "\n".join(offenders)


def test_no_import_cycle_between_modules():
    modules = {_module_name(p): p for p in _sources()}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for m in _imports(path):
            while m and m not in modules:  # `from sicog.x import name` names a module's attribute
                m = m.rpartition(".")[0]
            if m and m != name:
                deps.add(m)
        graph[name] = deps
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(node, stack):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1 and not node.startswith(dep + "."):  # a package importing its child is fine
                path = stack + [node]
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            if dep not in state:
                visit(dep, stack + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_a_lazy_import_cycle_is_seen():
    a, b = PACKAGE / "utils" / "_probe_a.py", PACKAGE / "utils" / "_probe_b.py"
    a.write_text("from sicog.utils import _probe_b\n")
    b.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sicog.utils import _probe_a\n")
    try:
        test_no_import_cycle_between_modules()  # an import for annotations only is no cycle
        b.write_text("def f():\n    from sicog.utils import _probe_a\n")
        with pytest.raises(AssertionError, match="_probe_a -> sicog.utils._probe_b -> sicog.utils._probe_a"):
            test_no_import_cycle_between_modules()
    finally:
        a.unlink()
        b.unlink()


def test_no_module_over_the_size_limit():
    long = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for p in _sources()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)


def test_the_architecture_map_names_every_module():
    """docs/architecture.md is where a newcomer finds a module: each one is named there."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    unnamed = [str(p.relative_to(PACKAGE)) for p in _sources()
               if p.name not in ("__init__.py", "__main__.py") and not p.name.startswith("_probe")
               and p.name not in text]
    assert not unnamed, "not in docs/architecture.md: " + ", ".join(unnamed)
