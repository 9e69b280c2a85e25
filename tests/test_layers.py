"""Imports run one way: no module of the package imports a layer above its own (the order is in
``cmdbgraph/__init__.py``). Read from the source, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cmdbgraph"

# Module (or package) -> layer; a module may import only layers below its own, and its own
# package. The most specific name wins.
LAYERS = {
    "cmdbgraph": 0,  # the package itself: its version
    "cmdbgraph.settings": 0,
    "cmdbgraph.logs": 0,
    "cmdbgraph.metrics": 0,
    "cmdbgraph.db": 1,
    "cmdbgraph.services": 2,
    "cmdbgraph.remote": 3,
    "cmdbgraph.http.gateway": 3,
    "cmdbgraph.http.identity": 3,
    "cmdbgraph.http.jsonbody": 3,
    "cmdbgraph.http.replies": 3,
    "cmdbgraph.schema": 4,
    "cmdbgraph.resolvers": 5,
    "cmdbgraph.rest": 5,
    "cmdbgraph.api": 6,
    "cmdbgraph.http": 7,
    "cmdbgraph.app": 8,
    "cmdbgraph.cli": 9,
}


def layer_of(module: str) -> tuple[str, int]:
    best = max(
        (name for name in LAYERS if module == name or module.startswith(name + ".")), key=len
    )
    return best, LAYERS[best]


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic's scripts: they import the tables, below everything
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                # "from cmdbgraph.http import identity" imports cmdbgraph.http.identity; "from
                # cmdbgraph.http.replies import ESB" imports cmdbgraph.http.replies.
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if _is_module(submodule) else node.module)
    return {name for name in names if name.startswith("cmdbgraph.")}


def _is_module(name: str) -> bool:
    dotted = PACKAGE.parent.joinpath(*name.split("."))
    return dotted.with_suffix(".py").is_file() or (dotted / "__init__.py").is_file()


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_no_import_runs_back_up(module, path):
    own, level = layer_of(module)
    upward = []
    for name in imported(path):
        if not _is_module(name):
            continue  # a name imported from a module, not a module
        target, target_level = layer_of(name)
        if target == own or name == module:
            continue
        if target_level >= level:
            upward.append(f"{name} (layer {target_level}, {target})")
    assert upward == [], f"{module} (layer {level}, {own}) imports upward: {upward}"
