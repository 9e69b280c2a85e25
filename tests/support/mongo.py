"""A plain-Python reading of a condition, as MongoDB would match it against one document:
the reference the SQL of ``cmdbgraph.services.conditions`` is compared with."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cmdbgraph.services.conditions import And, In, Node, Not, Or, Test

MISSING = object()


def bracket(value: object) -> str:
    """MongoDB's type bracket: only values of one bracket compare."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, datetime):
        return "date"
    return "object"


def lookup(document: dict, path: tuple[str, ...]) -> Any:
    value: Any = document
    for segment in path:
        if not isinstance(value, dict) or segment not in value:
            return MISSING
        value = value[segment]
    return value


def _scalar(value: Any, node: Test | In) -> bool:
    if isinstance(node, In):
        return any(_scalar(value, Test(node.path, "eq", v)) for v in node.values)
    op, wanted = node.op, node.value
    if op == "regex":
        return isinstance(value, str) and wanted.search(value)
    if wanted is None:
        return value is None and op in ("eq", "gte", "lte")
    if bracket(value) != bracket(wanted):
        return False
    if op == "eq":
        return value == wanted
    return {
        "gt": value > wanted,
        "gte": value >= wanted,
        "lt": value < wanted,
        "lte": value <= wanted,
    }[op]


def matches(document: dict, node: Node) -> bool:
    if isinstance(node, And):
        return all(matches(document, child) for child in node.children)
    if isinstance(node, Or):
        return any(matches(document, child) for child in node.children)
    if isinstance(node, Not):
        return not matches(document, node.child)
    value = lookup(document, node.path)
    if isinstance(node, Test) and node.op == "exists":
        return value is not MISSING
    if value is MISSING:
        if isinstance(node, In):
            return None in node.values
        return node.value is None and node.op in ("eq", "gte", "lte")
    if _scalar(value, node):
        return True
    return isinstance(value, list) and any(_scalar(element, node) for element in value)
