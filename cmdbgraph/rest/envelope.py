"""Reading REST bodies as upstream's Go decoder does, with upstream's error for bad input."""

from __future__ import annotations

from starlette.requests import Request

from cmdbgraph.db.tables import is_int64
from cmdbgraph.http.jsonbody import BodyError, decode


class BadRequestBody(Exception):
    """The body is not JSON, or a field has the wrong type: upstream answers 1199000."""


async def read_json_object(request: Request) -> dict:
    """The body as a JSON object; raises ``BadRequestBody`` otherwise.

    An empty body is refused too (Go's decoder refuses it), except on routes that carry
    their arguments in the path, where it stands for no further arguments.
    """
    raw = await request.body()
    if not raw.strip():
        if request.path_params:
            return {}
        raise BadRequestBody
    try:
        body = decode(raw)
    except BodyError:
        raise BadRequestBody from None
    if not isinstance(body, dict):
        raise BadRequestBody
    return body


def string_field(body: dict, name: str) -> str:
    """A string field as Go's encoding/json reads it: missing or null is empty."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequestBody
    return value


def int_field(body: dict, name: str, *, default: int = 0) -> int:
    """An int64 field as Go reads it: missing or null is ``default``; floats, bools, strings and
    numbers out of the int64 range are refused."""
    value = body.get(name)
    if value is None:
        return default
    if not is_int64(value):
        raise BadRequestBody
    return value


def list_field(body: dict, name: str) -> list:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequestBody
    return value


def object_field(body: dict, name: str) -> dict:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestBody
    return value
