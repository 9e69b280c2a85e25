"""Upstream's response envelopes, and JSON body parsing with upstream's error for bad input."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cmdbgraph.services.errors import CmdbError, ErrorCode, render

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class BadRequestBody(Exception):
    """The body is not JSON, or a field has the wrong type: upstream answers 1199000."""


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Envelope:
    """How one family of routes wraps its answers.

    ESB (``/api/c/compapi/...``): ``{result, code, message, permission, request_id, data}``.
    Native (``/api/v3/...``): ``{result, bk_error_code, bk_error_msg, permission, data}``.
    Both echo the request id in the ``X-Request-ID`` header.
    """

    def __init__(self, *, esb: bool) -> None:
        self.esb = esb

    def body(
        self,
        *,
        code: int,
        message: str,
        data: Any,
        request_id: str,
        permission: dict | None = None,
    ) -> dict:
        if self.esb:
            return {
                "result": code == 0,
                "code": code,
                "message": message,
                "permission": permission,
                "request_id": request_id,
                "data": data,
            }
        return {
            "result": code == 0,
            "bk_error_code": code,
            "bk_error_msg": message,
            "permission": permission,
            "data": data,
        }

    def success(self, data: Any, *, request_id: str, language: str) -> JSONResponse:
        return self._response(
            self.body(
                code=0,
                message=render(ErrorCode.SUCCESS, (), language),
                data=data,
                request_id=request_id,
            ),
            request_id,
        )

    def failure(self, error: CmdbError, *, request_id: str, language: str) -> JSONResponse:
        return self._response(
            self.body(
                code=error.code.value,
                message=error.message(language),
                data=None,
                request_id=request_id,
                permission=error.permission,
            ),
            request_id,
            status_code=error.http_status,
        )

    @staticmethod
    def _response(body: dict, request_id: str, status_code: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status_code, headers={"X-Request-ID": request_id})


async def read_json_object(request: Request) -> dict:
    """The body as a JSON object; raises ``BadRequestBody`` otherwise.

    An empty body is refused too (Go's decoder refuses it), except on routes that carry
    their arguments in the path, where it stands for no further arguments.
    """
    raw = await request.body()
    if not raw.strip() and not request.path_params:
        raise BadRequestBody
    if b"\\u0000" in raw:
        # PostgreSQL cannot store NUL in text; no BlueKing field needs one.
        raise BadRequestBody
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
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
    if type(value) is not int or not INT64_MIN <= value <= INT64_MAX:
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
