"""The import structure of the package, read from the source (type-only imports included):
no cycle anywhere, and the REST and workflow layers import only downwards."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parent.parent / "comfysync"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> Dict[str, Set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: Dict[str, Set[str]] = {m: set() for m in paths}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: List[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in paths]
                targets = subs if len(subs) == len(node.names) else [*subs, base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            graph[module].update(t for t in targets if t in paths and t != module)
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_rest_and_workflow_import_only_downwards() -> None:
    below = ("comfysync._http", "comfysync._rest", "comfysync.errors", "comfysync._suggest",
             "comfysync._types")
    graph = _graph()
    for module, targets in graph.items():
        if module.startswith("comfysync._rest"):
            assert {t for t in targets if not t.startswith(below)} == set(), module
        if module.startswith("comfysync._workflow"):
            allowed = (*below, "comfysync._workflow")
            assert {t for t in targets if not t.startswith(allowed)} == set(), module
    assert "comfysync._workflow.prompt" in graph["comfysync._client"]
