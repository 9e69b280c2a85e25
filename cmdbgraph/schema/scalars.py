"""Scalars: ``BigInt`` for ids (GraphQL's ``Int`` is 32-bit) and a ``JSON`` that refuses what
cannot be stored exactly instead of changing it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from cmdbgraph.db.tables import INT64_MAX, INT64_MIN, is_int64

_MAX_JSON_DEPTH = 32


class InvalidValue(ValueError):
    """A value a scalar refuses; its text is shown to the client."""


# Both run once per id of a batch (400 in, 600 out): ``is_int64`` inlined.


def _parse_big_int(value: object) -> int:
    # Numbers only, as the REST shim takes ids: "11" is refused there too.
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    raise InvalidValue(f"BigInt takes an integer from {INT64_MIN} to {INT64_MAX}.")


def _serialize_big_int(value: object) -> int:
    if type(value) is int and INT64_MIN <= value <= INT64_MAX:
        return value
    raise InvalidValue(f"BigInt cannot represent {value!r}.")


BigInt = NewType("BigInt", int)
JSON = NewType("JSON", object)

_BIG_INT = strawberry.scalar(
    name="BigInt",
    description=f"A signed 64-bit integer (ids), from {INT64_MIN} to {INT64_MAX}, written as "
    "a JSON number.",
    serialize=_serialize_big_int,
    parse_value=_parse_big_int,
)


def _check_json(value: object, depth: int = 0) -> object:
    if depth > _MAX_JSON_DEPTH:
        raise InvalidValue(f"JSON nests deeper than {_MAX_JSON_DEPTH} levels.")
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidValue("NUL characters are not accepted.")
    elif type(value) is int:
        if not is_int64(value):
            raise InvalidValue(
                f"the integer {value} cannot be stored exactly: integers go from {INT64_MIN} "
                f"to {INT64_MAX} (write larger numbers as strings)."
            )
    elif isinstance(value, float):
        # PostgreSQL keeps 1e20 as the integer 100000000000000000000: a number that size could
        # not be given back as it was sent.
        if not math.isfinite(value) or abs(value) >= 2**63:
            raise InvalidValue(
                f"the number {value!r} cannot be stored exactly: numbers are smaller than 2**63 "
                "in magnitude (write larger ones as strings)."
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif value is not None and not isinstance(value, bool):
        raise InvalidValue(f"{type(value).__name__} is not a JSON value.")
    return value


_JSON = strawberry.scalar(
    name="JSON",
    description="A JSON value. Integers are 64-bit: a larger one is refused rather than "
    "rounded (write it as a string).",
    specified_by_url="https://ecma-international.org/publications-and-standards/standards/ecma-404/",
    serialize=lambda value: value,
    parse_value=_check_json,
)

# For ``StrawberryConfig(scalar_map=...)``.
SCALARS: Mapping[object, ScalarDefinition] = {BigInt: _BIG_INT, JSON: _JSON}
