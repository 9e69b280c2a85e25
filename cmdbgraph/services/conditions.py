"""Upstream's condition language: MongoDB's query operators, as BlueKing callers write them in
``condition``, parsed into a small tree and compiled into SQL on both databases. No SQL text is
ever built from input: field names pick columns or JSON paths, values are bound parameters.

What a condition means is what MongoDB would answer on upstream's documents:

- ``{field: value}`` and ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$in``,
  ``$nin``, ``$regex`` (with ``$options`` ``i``, ``m``, ``s``), ``$exists``, ``$not``, and at
  any level ``$and``, ``$or``, ``$nor`` (``$comment`` is accepted and ignored).
- Values compare within their type, as MongoDB's type brackets do: numbers with numbers
  (integers and floats alike, exactly), strings with strings (by their UTF-8 bytes), booleans
  with booleans; ``1`` never equals ``true`` nor ``"1"``. An integer beyond int64 is a double,
  as upstream's driver sends it.
- A missing field equals ``null``; ``$ne``, ``$nin`` and ``$not`` match it.
- Instance attributes are JSON: dotted paths reach into objects (``"a.b"``), and a field that
  holds an array matches when one of its elements does (``{"tags": "x"}``).
- Timestamps are dates upstream: a JSON value never equals or orders with one (use
  ``$exists``, or the calls' ``time_condition``).

What this service does not run, it refuses with a clear error instead of answering wrongly:
``$elemMatch``, ``$size``, ``$all``, ``$type`` and the other operators MongoDB has beyond the
list above; equality with a whole array or object; regular expressions RE2 cannot run in
linear time (back-references, look-around) or that the two databases would read differently.
The limits below bound what one condition may cost. ``$where``, ``$expr``, ``$accumulator`` and
``$function`` are refused as upstream's storage layer refuses them.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import re2
from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Text

from cmdbgraph.db.regex import compiled
from cmdbgraph.db.tables import is_int64
from cmdbgraph.services.errors import ErrorCode, exceeds_limit, verbatim

# What one condition may hold (upstream has no limits of its own here).
MAX_DEPTH = 16  # nested documents and operators
MAX_NODES = 1_000  # operators and fields, all levels
MAX_VALUES = 5_000  # values in $in / $nin lists, all of them
MAX_PATTERN = 1_000  # characters of one regular expression

FORBIDDEN = ("$where", "$expr", "$accumulator", "$function")
# MongoDB operators this service knows but does not run.
UNSUPPORTED = frozenset(
    {
        "$all",
        "$elemMatch",
        "$size",
        "$type",
        "$mod",
        "$text",
        "$jsonSchema",
        "$bitsAllSet",
        "$bitsAllClear",
        "$bitsAnySet",
        "$bitsAnyClear",
        "$geoWithin",
        "$geoIntersects",
        "$near",
        "$nearSphere",
        "$sampleRate",
        "$rand",
    }
)
_COMPARISONS = {"$eq": "eq", "$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


class ConditionError(Exception):
    """A condition that cannot run, in the words upstream hands to callers (MongoDB's, its
    storage layer's, or ours for what this service does not run). ``parse`` is true when
    upstream's own parser, before MongoDB, would refuse it."""

    def __init__(self, text: str, *, parse: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.parse = parse


# --- The tree ----------------------------------------------------------------------------

Scalar = None | bool | int | float | str


@dataclass(frozen=True, slots=True)
class Test:
    """``path`` compared by ``op`` (eq, gt, gte, lt, lte) with ``value``; ``exists``; or
    ``regex`` with a ``Pattern``."""

    path: tuple[str, ...]
    op: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class In:
    path: tuple[str, ...]
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


Node = Test | In | Not | And | Or
EVERYTHING = And(())


@dataclass(frozen=True, slots=True)
class Pattern:
    """A regular expression checked by RE2, with MongoDB's options (``i``, ``m``, ``s``)."""

    source: str
    options: str

    @property
    def re2_text(self) -> str:
        flags = "".join(flag for flag in "ims" if flag in self.options)
        return f"(?{flags}){self.source}" if flags else self.source

    @property
    def postgresql_text(self) -> str:
        """The same expression for PostgreSQL's regular expressions (ARE): RE2's defaults
        (``.`` stops at a newline, ``^``/``$`` at the ends) spelled as ARE's embedded
        options, and the escapes ARE spells differently."""
        multiline, dotall = "m" in self.options, "s" in self.options
        newline = {(False, False): "p", (False, True): "s", (True, False): "n", (True, True): "w"}
        flags = newline[(multiline, dotall)] + ("i" if "i" in self.options else "")
        return f"(?{flags}){_to_are(self.source)}"

    def search(self, text: str) -> bool:
        return compiled(self.re2_text).search(text) is not None


# Escapes RE2 and PostgreSQL both read, and those PostgreSQL spells differently.
_ARE_ESCAPES = {"b": r"\y", "B": r"\Y", "z": r"\Z"}
_SHARED_ESCAPES = set("dDsSwWAtnrfvx.\\^$|?*+()[]{}-/0")


def _tokens(source: str) -> Iterator[tuple[int, str]]:
    """A pattern's characters with their positions, an escape (a backslash and the character
    after it) as one token."""
    i = 0
    while i < len(source):
        size = 2 if source[i] == "\\" and i + 1 < len(source) else 1
        yield i, source[i : i + size]
        i += size


def _to_are(source: str) -> str:
    return "".join(
        _ARE_ESCAPES.get(token[1], token) if len(token) == 2 else token
        for _, token in _tokens(source)
    )


def _check_pattern(source: str, options: str) -> Pattern:
    if len(source) > MAX_PATTERN:
        raise exceeds_limit("$regex", MAX_PATTERN)
    for flag in options:
        if flag not in "imsux":
            raise ConditionError(f"(BadValue) invalid flag in regex options: {flag}")
    if "x" in options:
        raise ConditionError('regular expression option "x" is not supported')
    for i, token in _tokens(source):
        if len(token) == 2:
            escaped = token[1]
            if escaped.isalnum() and escaped not in _SHARED_ESCAPES | _ARE_ESCAPES.keys():
                raise ConditionError(f"regular expression escape \\{escaped} is not supported")
            if escaped == "x" and source[i + 2 : i + 3] == "{":
                raise ConditionError("regular expression escape \\x{...} is not supported")
        elif token == "(" and source[i + 1 : i + 2] == "?" and source[i + 2 : i + 3] != ":":
            raise ConditionError(
                "regular expression groups (?...) other than (?:...) are not supported"
            )
    pattern = Pattern(source, "".join(flag for flag in "ims" if flag in options))
    try:
        compiled(pattern.re2_text)
    except re2.error as error:
        reason = (
            error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else error
        )
        raise ConditionError(f"(BadValue) Regular expression is invalid: {reason}") from None
    return pattern


# --- Parsing -----------------------------------------------------------------------------


def check_forbidden(condition: object) -> None:
    """Upstream's storage layer, before MongoDB sees a filter: a forbidden operator as a key of
    any object (not inside arrays, as upstream walks them) refuses the whole filter. Walked
    without recursion: a body may nest as deep as the JSON decoder allows."""
    pending = [condition]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                if key in FORBIDDEN:
                    raise ConditionError(f'operator "{key}" is forbidden')
                pending.append(value)


def parse(condition: Mapping[str, Any] | None, fields: Fields | None = None) -> Node:
    """The tree of ``condition`` (a decoded JSON object) for rows described by ``fields``;
    raises ``ConditionError``, or ``CmdbError`` 1199035 when it is larger than the limits
    above."""
    if not condition:
        return EVERYTHING
    check_forbidden(condition)
    return _Parser(fields).document(condition, 1)


NEVER = Or(())
_WHOLE = object()  # an array or an object given as a value


def _scalar(value: object) -> Any:
    if type(value) is int and not is_int64(value):
        return float(value)  # upstream's driver sends it as a double
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _WHOLE


class _Parser:
    def __init__(self, fields: Fields | None) -> None:
        self.fields = fields
        self.nodes = 0
        self.values = 0

    def _scalar_only(self, path: tuple[str, ...]) -> bool:
        """No row holds an array or an object at ``path``: a column, a field of one, or a
        name of a table without attributes."""
        fields = self.fields
        return fields is not None and (path[0] in fields.columns or fields.attributes is None)

    def _whole(self, path: tuple[str, ...], message: str) -> Node:
        """A comparison with a whole array or object: it never holds where only scalars live;
        in attributes this service does not run it."""
        if self._scalar_only(path):
            return NEVER
        raise ConditionError(message)

    def _count(self, depth: int, nodes: int = 1) -> None:
        self.nodes += nodes
        if depth > MAX_DEPTH:
            raise exceeds_limit("condition depth", MAX_DEPTH)
        if self.nodes > MAX_NODES:
            raise exceeds_limit("condition", MAX_NODES)

    def document(self, condition: Mapping[str, Any], depth: int) -> Node:
        parts: list[Node] = []
        for key, value in condition.items():
            self._count(depth)
            if key.startswith("$"):
                parts.append(self._top(key, value, depth))
            else:
                parts.append(self._field(tuple(key.split(".")), value, depth))
        return _and(parts)

    def _top(self, key: str, value: object, depth: int) -> Node:
        if key in ("$and", "$or", "$nor"):
            # Upstream's own parser reads $and and $or (not $nor) before MongoDB does.
            parsed = key != "$nor"
            if not isinstance(value, list) or not value:
                raise ConditionError(
                    "(BadValue) $and/$or/$nor must be a nonempty array",
                    parse=parsed and not isinstance(value, list),
                )
            children = []
            for item in value:
                if not isinstance(item, dict):
                    raise ConditionError(
                        "(BadValue) $or/$and/$nor entries need to be full objects", parse=parsed
                    )
                children.append(self.document(item, depth + 1))
            if key == "$and":
                return _and(children)
            either = Or(tuple(children))
            return either if key == "$or" else Not(either)
        if key == "$comment":
            return EVERYTHING
        if key in UNSUPPORTED:
            raise ConditionError(f'operator "{key}" is not supported')
        raise ConditionError(f"(BadValue) unknown top level operator: {key}")

    def _field(self, path: tuple[str, ...], value: object, depth: int) -> Node:
        if isinstance(value, dict) and value and next(iter(value)).startswith("$"):
            return self._operators(path, value, depth + 1)
        if isinstance(value, dict | list):
            return self._whole(
                path,
                "equality with a whole array or object is not supported: use $in or a field "
                "of the object",
            )
        return Test(path, "eq", _scalar(value))

    def _operators(self, path: tuple[str, ...], ops: Mapping[str, Any], depth: int) -> Node:
        parts: list[Node] = []
        for op, operand in ops.items():
            self._count(depth)
            if op in _COMPARISONS:
                parts.append(self._compare(path, _COMPARISONS[op], operand))
            elif op == "$ne":
                parts.append(Not(self._compare(path, "eq", operand)))
            elif op in ("$in", "$nin"):
                if not isinstance(operand, list):
                    raise ConditionError(f"(BadValue) {op} needs an array")
                self.values += len(operand)
                if self.values > MAX_VALUES:
                    raise exceeds_limit(f"{op} values", MAX_VALUES)
                values = [self._in_value(path, v) for v in operand]
                node = In(path, tuple(dict.fromkeys(v for v in values if v is not _WHOLE)))
                parts.append(node if op == "$in" else Not(node))
            elif op == "$exists":
                present = Test(path, "exists")
                parts.append(present if _truthy(operand) else Not(present))
            elif op == "$regex":
                options = ops.get("$options", "")
                if not isinstance(operand, str):
                    raise ConditionError("(BadValue) $regex has to be a string")
                if not isinstance(options, str):
                    raise ConditionError("(BadValue) $options has to be a string")
                parts.append(Test(path, "regex", _check_pattern(operand, options)))
            elif op == "$options":
                if "$regex" not in ops:
                    raise ConditionError("(BadValue) $options needs a $regex")
            elif op == "$not":
                if not isinstance(operand, dict) or not operand:
                    raise ConditionError("(BadValue) $not needs a regex or a document")
                first = next(iter(operand))
                if not first.startswith("$"):
                    raise ConditionError(f"(BadValue) unknown operator: {first}")
                parts.append(Not(self._operators(path, operand, depth + 1)))
            elif op in UNSUPPORTED:
                raise ConditionError(f'operator "{op}" is not supported')
            else:
                raise ConditionError(f"(BadValue) unknown operator: {op}")
        return _and(parts)

    def _compare(self, path: tuple[str, ...], op: str, operand: object) -> Node:
        value = _scalar(operand)
        if value is _WHOLE:
            return self._whole(path, "comparing with an array or an object is not supported")
        return Test(path, op, value)

    def _in_value(self, path: tuple[str, ...], value: object) -> Any:
        if isinstance(value, dict) and "$regex" in value:
            raise ConditionError("regular expressions in $in are not supported")
        scalar = _scalar(value)
        if scalar is _WHOLE and not self._scalar_only(path):
            raise ConditionError("comparing with an array or an object is not supported")
        return scalar


def _truthy(value: object) -> bool:
    return value not in (None, False, 0)


def _and(parts: list[Node]) -> Node:
    return parts[0] if len(parts) == 1 else And(tuple(parts))


# --- Compiling to SQL --------------------------------------------------------------------


class Kind(enum.Enum):
    """What a column holds, as MongoDB would compare it."""

    INT = "int"
    STR = "str"
    BOOL = "bool"
    TIME = "time"  # a date upstream: no JSON value equals or orders with it


@dataclass(frozen=True)
class Fields:
    """Where a condition's field names point: columns of one table, and for every other name
    the JSON object ``attributes`` when the table has one (instances), else nowhere (the field
    is missing from every row)."""

    columns: Mapping[str, tuple[ColumnElement[Any], Kind]]
    attributes: ColumnElement[Any] | None = None


OWNER = "bk_supplier_account"


def caller_owned(condition: Any) -> Any:
    """``condition`` without a top-level ``bk_supplier_account``: upstream's reads overwrite it
    with the caller's own account (SetQueryOwner), so a caller's value for it filters nothing;
    this service keeps no accounts apart."""
    if isinstance(condition, dict) and OWNER in condition:
        return {key: value for key, value in condition.items() if key != OWNER}
    return condition


def table_fields(table: Any, kinds: Mapping[str, Kind]) -> Fields:
    """Fields that are the columns of ``table`` of the same names."""
    return Fields(columns={name: (table.c[name], kind) for name, kind in kinds.items()})


def ordering(fields: Fields, sort: Sequence[tuple[str, bool]]) -> list[ColumnElement[Any]]:
    """ORDER BY terms for (field, descending) pairs; a name that is no column sorts nothing,
    as in MongoDB."""
    order: list[ColumnElement[Any]] = []
    for name, descending in sort:
        found = fields.columns.get(name)
        if found is not None:
            order.append(found[0].desc() if descending else found[0].asc())
    return order


def compile_condition(node: Node, fields: Fields, dialect: str) -> ColumnElement[bool]:
    """``node`` as a SQL boolean for ``dialect`` (``sqlite`` or ``postgresql``)."""
    return _Compiler(fields, dialect == "postgresql").node(node)


# A JSON path segment this service can address on both databases (SQLite's quoted labels
# cannot hold a double quote): anything else names a field no row has.
_SEGMENT = re.compile(r'^[^"]{1,256}$')
_ORDERING = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__"}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Operands joined flat, at most; more are joined in parenthesized halves. SQLite parses
# ``a AND b AND c ...`` into a tree as deep as the list is long, and refuses one deeper than
# 1,000 ("Expression tree is too large"); halves keep the depth logarithmic.
_FLAT_OPERANDS = 64


class _Parenthesized(ColumnElement[bool]):
    """``(inner)``: a group SQLAlchemy does not merge into an enclosing AND or OR."""

    inherit_cache = True
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]
    type = Boolean()

    def __init__(self, inner: ColumnElement[bool]) -> None:
        self.inner = inner


@compiles(_Parenthesized)
def _render_parenthesized(element: _Parenthesized, compiler: Any, **kw: Any) -> str:
    return "(" + compiler.process(element.inner, **kw) + ")"


def _balanced(join: Any, empty: ColumnElement[bool], terms: list) -> ColumnElement[bool]:
    if len(terms) <= _FLAT_OPERANDS:
        return join(empty, *terms)
    middle = len(terms) // 2
    return join(
        _Parenthesized(_balanced(join, empty, terms[:middle])),
        _Parenthesized(_balanced(join, empty, terms[middle:])),
    )


class _Compiler:
    def __init__(self, fields: Fields, postgresql: bool) -> None:
        self.fields = fields
        self.postgresql = postgresql

    def node(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return _balanced(and_, true(), [self.node(child) for child in node.children])
        if isinstance(node, Or):
            return _balanced(or_, false(), [self.node(child) for child in node.children])
        if isinstance(node, Not):
            return not_(self.node(node.child))
        path = node.path
        column = self.fields.columns.get(path[0])
        if column is not None:
            if len(path) > 1:  # a scalar has no fields
                return self._missing(node)
            return self._column(node, *column)
        if self.fields.attributes is None or not all(_SEGMENT.match(s) for s in path):
            return self._missing(node)
        value = (_PgJson if self.postgresql else _SqliteJson).at(self.fields.attributes, path)
        return value.matches(node)

    @staticmethod
    def _missing(node: Test | In) -> ColumnElement[bool]:
        if isinstance(node, In):
            return true() if None in node.values else false()
        if node.value is None and node.op in ("eq", "gte", "lte"):
            return true()
        return false()

    def _column(
        self, node: Test | In, column: ColumnElement[Any], kind: Kind
    ) -> ColumnElement[bool]:
        if isinstance(node, In):
            typed = [v for v in (_typed(kind, v) for v in node.values) if v is not _NONE]
            return column.in_(typed) if typed else false()
        if node.op == "exists":
            return true()
        if node.op == "regex":
            if kind is not Kind.STR:
                return false()
            return self._regex(column, node.value)
        value = node.value
        if kind is Kind.INT and isinstance(value, float) and _number(value):
            return _int_against_float(column, node.op, value)
        typed = _typed(kind, value)
        if typed is _NONE:
            return false()
        if kind is Kind.BOOL:
            return _bool_compare(column == true(), column == false(), node.op, typed)
        if kind is Kind.STR and node.op != "eq" and self.postgresql:
            column = column.collate("C")
        return _compare(column, node.op, typed)

    def _regex(self, text: ColumnElement[Any], pattern: Pattern) -> ColumnElement[bool]:
        if self.postgresql:
            return text.op("~", is_comparison=True)(pattern.postgresql_text)
        return text.op("REGEXP", is_comparison=True)(pattern.re2_text)


_NONE = object()


def _typed(kind: Kind, value: Any) -> Any:
    """``value`` if it belongs to the bracket of ``kind``, else ``_NONE`` (never equal)."""
    if isinstance(value, datetime):
        return value if kind is Kind.TIME else _NONE
    if kind is Kind.INT and _number(value):
        if isinstance(value, float):
            return int(value) if value.is_integer() and is_int64(int(value)) else _NONE
        return value
    if kind is Kind.STR and isinstance(value, str):
        return value
    if kind is Kind.BOOL and isinstance(value, bool):
        return value
    return _NONE


def _compare(left: ColumnElement[Any], op: str, right: Any) -> ColumnElement[bool]:
    if op == "eq":
        return left == right
    return getattr(left, _ORDERING[op])(right)


def _int_against_float(column: ColumnElement[Any], op: str, value: float) -> ColumnElement[bool]:
    """An integer column against a float, exactly, binding integers only."""
    if op == "eq":
        whole = value.is_integer() and is_int64(int(value))
        return column == int(value) if whole else false()
    if value >= 2**63:
        return true() if op in ("lt", "lte") else false()
    if value < -(2**63):
        return true() if op in ("gt", "gte") else false()
    if op in ("gt", "lte"):
        bound = math.floor(value)  # x > 1.5 ⟺ x > 1 ; x <= 1.5 ⟺ x <= 1
    else:
        bound = math.ceil(value)  # x >= 1.5 ⟺ x >= 2 ; x < 1.5 ⟺ x < 2
    return _compare(column, op, bound)


def _bool_compare(
    is_true: ColumnElement[bool], is_false: ColumnElement[bool], op: str, value: bool
) -> ColumnElement[bool]:
    """A boolean against ``value`` (false orders before true)."""
    if op == "eq":
        return is_true if value else is_false
    either = or_(is_true, is_false)
    table = {
        ("gt", False): is_true,
        ("gt", True): false(),
        ("gte", False): either,
        ("gte", True): is_true,
        ("lt", False): false(),
        ("lt", True): is_false,
        ("lte", False): is_false,
        ("lte", True): either,
    }
    return table[(op, value)]


def _sure(expression: ColumnElement[Any]) -> ColumnElement[bool]:
    """True or false, never SQL's NULL (which NOT would keep NULL, where MongoDB negates)."""
    return func.coalesce(expression, false(), type_=Boolean)


class _JsonValue:
    """One JSON value in SQL (a path into ``attributes``, or an element of an array there)."""

    postgresql = False

    def is_type(self, name: str) -> ColumnElement[bool]:  # pragma: no cover - abstract
        raise NotImplementedError

    def number(self) -> ColumnElement[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def number_value(self, value: float | int) -> Any:
        return value

    def text(self) -> ColumnElement[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def elements(self) -> tuple[Any, _JsonValue]:  # pragma: no cover - abstract
        raise NotImplementedError

    def is_true(self) -> ColumnElement[bool]:  # pragma: no cover - abstract
        raise NotImplementedError

    def is_false(self) -> ColumnElement[bool]:  # pragma: no cover - abstract
        raise NotImplementedError

    def missing(self) -> ColumnElement[bool]:  # pragma: no cover - abstract
        raise NotImplementedError

    # What one value (not looking into arrays) satisfies.
    def scalar(self, node: Test | In) -> ColumnElement[bool]:
        if isinstance(node, In):
            return self._any_of(node.values)
        value, op = node.value, node.op
        if op == "regex":
            return and_(self.is_type("string"), self._regex(value))
        if value is None:
            return self.is_type("null") if op in ("eq", "gte", "lte") else false()
        if isinstance(value, datetime):
            return false()  # JSON holds no dates
        if isinstance(value, bool):
            return _bool_compare(self.is_true(), self.is_false(), op, value)
        if _number(value):
            return and_(
                self.is_type("number"), _compare(self.number(), op, self.number_value(value))
            )
        text = self.text()
        if op != "eq" and self.postgresql:
            text = text.collate("C")
        return and_(self.is_type("string"), _compare(text, op, value))

    def _regex(self, pattern: Pattern) -> ColumnElement[bool]:
        if self.postgresql:
            return self.text().op("~", is_comparison=True)(pattern.postgresql_text)
        return self.text().op("REGEXP", is_comparison=True)(pattern.re2_text)

    def _any_of(self, values: Iterable[Scalar]) -> ColumnElement[bool]:
        numbers: list[int | float] = [
            v for v in values if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        strings = [v for v in values if isinstance(v, str)]
        parts: list[ColumnElement[bool]] = []
        if numbers:
            parts.append(
                and_(
                    self.is_type("number"),
                    self.number().in_([self.number_value(v) for v in numbers]),
                )
            )
        if strings:
            parts.append(and_(self.is_type("string"), self.text().in_(strings)))
        if True in values:
            parts.append(self.is_true())
        if False in [v for v in values if isinstance(v, bool)]:
            parts.append(self.is_false())
        if None in values:
            parts.append(self.is_type("null"))
        return or_(false(), *parts)

    def matches(self, node: Test | In) -> ColumnElement[bool]:
        """MongoDB's match of a field: the value, or one element of it when it is an array;
        a missing field equals null."""
        if isinstance(node, Test) and node.op == "exists":
            return not_(self.missing())
        source, element = self.elements()
        in_array = and_(
            self.is_type("array"),
            exists(select(literal(1)).select_from(source).where(_sure(element.scalar(node)))),
        )
        matched = or_(_sure(self.scalar(node)), in_array)
        if (isinstance(node, In) and None in node.values) or (
            isinstance(node, Test) and node.value is None and node.op in ("eq", "gte", "lte")
        ):
            matched = or_(self.missing(), matched)
        return _sure(matched)


class _SqliteJson(_JsonValue):
    # SQLite's json_type(): null true false integer real text array object (NULL: missing).
    _TYPES = {
        "number": ("integer", "real"),
        "string": ("text",),
        "null": ("null",),
        "array": ("array",),
    }

    def __init__(self, type_: ColumnElement[Any], value: ColumnElement[Any], each: Any) -> None:
        self.type_ = type_
        self.value = value
        self._each = each

    @classmethod
    def at(cls, attributes: ColumnElement[Any], path: tuple[str, ...]) -> _SqliteJson:
        json_path = "$" + "".join(f'."{segment}"' for segment in path)
        each = func.json_each(attributes, json_path).table_valued("type", "value").alias("element")
        return cls(
            func.json_type(attributes, json_path),
            func.json_extract(attributes, json_path),
            each,
        )

    def is_type(self, name: str) -> ColumnElement[bool]:
        names = self._TYPES[name]
        return self.type_ == names[0] if len(names) == 1 else self.type_.in_(names)

    def number(self) -> ColumnElement[Any]:
        return self.value

    def text(self) -> ColumnElement[Any]:
        return self.value

    def is_true(self) -> ColumnElement[bool]:
        return self.type_ == "true"

    def is_false(self) -> ColumnElement[bool]:
        return self.type_ == "false"

    def missing(self) -> ColumnElement[bool]:
        return self.type_.is_(None)

    def elements(self) -> tuple[Any, _JsonValue]:
        each = self._each
        return each, _SqliteJson(each.c.type, each.c.value, None)


_EMPTY_PATH = literal_column("'{}'", ARRAY(Text))


class _PgJson(_JsonValue):
    postgresql = True

    def __init__(self, value: ColumnElement[Any]) -> None:
        self.value = value

    @classmethod
    def at(cls, attributes: ColumnElement[Any], path: tuple[str, ...]) -> _PgJson:
        value: ColumnElement[Any] = type_coerce(attributes, JSONB)
        for segment in path:
            # ``->`` with a text key reads objects only (an array gives NULL), as SQLite does.
            value = value.op("->", return_type=JSONB)(literal(segment, Text))
        return cls(value)

    def is_type(self, name: str) -> ColumnElement[bool]:
        return (
            func.jsonb_typeof(self.value)
            == {"number": "number", "string": "string", "null": "null", "array": "array"}[name]
        )

    def number(self) -> ColumnElement[Any]:
        return self.value

    def number_value(self, value: float | int) -> Any:
        return cast(literal(json.dumps(value), Text), JSONB)

    def text(self) -> ColumnElement[Any]:
        return self.value.op("#>>", return_type=Text)(_EMPTY_PATH)

    def is_true(self) -> ColumnElement[bool]:
        return self.value == cast(literal("true", Text), JSONB)

    def is_false(self) -> ColumnElement[bool]:
        return self.value == cast(literal("false", Text), JSONB)

    def missing(self) -> ColumnElement[bool]:
        return self.value.is_(None)

    def elements(self) -> tuple[Any, _JsonValue]:
        array = case(
            (func.jsonb_typeof(self.value) == "array", self.value),
            else_=cast(literal("[]", Text), JSONB),
        )
        each = func.jsonb_array_elements(array).table_valued("value").alias("element")
        return each, _PgJson(each.c.value)


# --- time_condition ------------------------------------------------------------------------

# Upstream's aliases of the two timestamps in a time condition.
TIME_FIELDS = {"bk_created_at": "create_time", "bk_updated_at": "last_time"}


@dataclass(frozen=True, slots=True)
class TimeRule:
    field: str
    start: datetime | None
    end: datetime | None


def time_condition(oper: str, rules: Iterable[TimeRule]) -> Node:
    """Upstream's ``time_condition`` (``MergeTimeCondition``): every rule holds. Its checks,
    in its order, with its words."""
    if oper != "and":
        raise verbatim(ErrorCode.PARAMETER_CHECK_FAILED, "time condition oper is invalid")
    rules = list(rules)
    if not rules:
        raise verbatim(ErrorCode.PARAMETER_UNASSIGNED, "time condition rules not set")
    parts: list[Node] = []
    for rule in rules:
        if not rule.field:
            raise verbatim(ErrorCode.PARAMETER_UNASSIGNED, "time condition field not set")
        if rule.start is None and rule.end is None:
            raise verbatim(
                ErrorCode.PARAMETER_CHECK_FAILED, "time condition start and end both not set"
            )
        path = tuple(TIME_FIELDS.get(rule.field, rule.field).split("."))
        start = rule.start.astimezone(UTC) if rule.start else None
        end = rule.end.astimezone(UTC) if rule.end else None
        if start is not None and start == end:
            parts.append(Test(path, "eq", start))
            continue
        if start is not None:
            parts.append(Test(path, "gte", start))
        if end is not None:
            parts.append(Test(path, "lte", end))
    return _and(parts)


def both(*nodes: Node | None) -> Node:
    """Every one of ``nodes`` (None stands for no condition)."""
    return _and([node for node in nodes if node is not None and node != EVERYTHING])
