"""The dependency direction of DESIGN.md, read off the source: no import circles between modules
(function-level imports included), and the base packages import no feature package."""

from __future__ import annotations

import ast
from pathlib import Path

import whiteboxdl

PACKAGE = Path(whiteboxdl.__file__).parent
BASE = ("data", "models", "viz")
FEATURES = ("pullbacks", "semantic", "quality", "robustness", "stability", "app")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in modules and c != name}
        graph[name] = targets
    return graph


def _package_inits(graph):
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``: those are not edges we own."""
    return {m for m in graph if any(other.startswith(m + ".") for other in graph)}


def test_no_import_circles():
    graph = _imports()
    inits = _package_inits(graph)
    edges = {m: {t for t in ts if t not in inits} for m, ts in graph.items() if m not in inits}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, f"import circles: {cycles}"


def test_base_packages_import_no_feature_package():
    bad = [(m, t) for m, ts in _imports().items() for t in ts
           if m.split(".")[1:2] and m.split(".")[1] in BASE
           and t.split(".")[1:2] and t.split(".")[1] in FEATURES]
    assert not bad, f"arrows up from data/models/viz: {bad}"
