"""webctp.sim's modules import one way (API facade → exchange → engine → book / accounting →
store): no cycle, counting imports made only for type checking."""

from __future__ import annotations

import ast
from pathlib import Path

import webctp.sim

SIM = Path(webctp.sim.__file__).resolve().parent


def imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in SIM.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:  # from . import _x
                    deps.update(a.name for a in node.names)
        graph[path.stem] = deps - {path.stem}
    return graph


def test_no_import_cycle() -> None:
    graph = imports()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        stack.append(mod)
        for dep in sorted(graph.get(mod, ())):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[mod] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod)


def test_the_layers_read_downwards() -> None:
    graph = imports()
    assert "_exchange" in graph["_api"] and "_api" not in graph["_exchange"]
    assert "_engine" in graph["_exchange"]
    assert "_book" in graph["_market"] and "_store" in graph["_engine"]
    for low in ("_book", "_market", "_accounting", "_store", "_session", "_registry"):
        assert not graph[low] & {"_api", "_exchange", "_engine"}, low
