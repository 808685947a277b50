"""The shape of the package: the demo is a client nobody imports, layers point down, no import
cycle, no module over 500 lines (a guard against sprawl: modules split by topic, never to fit it). Imports are read from the source (every `import`, also inside
functions), so a lazy import counts like any other."""

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


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Names of the sicog modules `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
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


def test_the_walk_sees_a_forbidden_import(tmp_path):
    bad = PACKAGE / "eval" / "_probe_import.py"
    bad.write_text("def f():\n    from sicog.demo.world import vocab\n")
    try:
        with pytest.raises(AssertionError, match="_probe_import"):
            test_nothing_outside_the_demo_imports_it()
    finally:
        bad.unlink()


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
        for m in _imports(path, top_level_only=True):
            while m and m not in modules:  # `from sicog.x import name` names a module's attribute
                m = m.rpartition(".")[0]
            if m and m != name:
                deps.add(m)
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1 and not node.startswith(dep + "."):  # a package importing its child is fine
                raise AssertionError("import cycle: " + " -> ".join(stack + [node, dep]))
            if dep not in state:
                visit(dep, stack + [node])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])


def test_no_module_over_the_size_limit():
    long = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for p in _sources()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)
