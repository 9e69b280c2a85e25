"""Every reply body the HTTP edge builds, and the one table from error code to HTTP status.

The rule, the same on every interface:
- **Transport-level failures** have an HTTP status of their own: authentication (401), a body
  too large (413), the database unavailable (503), a timeout (504), an internal error (500),
  an unknown path (404) or method (405), a malformed GraphQL request (400). GraphQL answers
  them with that status and a top-level ``errors[]`` entry carrying ``extensions.code``; REST
  with that status and upstream's envelope.
- **Everything the request's content decides** (validation, unknown models, permission,
  per-item failures, an idempotency key reused with another body) is a domain result, HTTP
  200, as upstream answers: GraphQL returns a typed result (``RequestError``,
  ``PermissionDenied``), REST upstream's envelope with ``result: false`` and the code.

Services raise codes only; the status comes from here.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import Response

from cmdbgraph.services.errors import CmdbError, ErrorCode, render

_STATUS: dict[ErrorCode, int] = {
    ErrorCode.CALL_SOURCE_AUTHENTICATION_FAILED: 401,
    ErrorCode.AUTHORIZATION_QUERY_FAILED: 401,
    ErrorCode.TOO_MANY_REQUESTS: 429,
    ErrorCode.DATABASE_UNAVAILABLE: 503,
    ErrorCode.INTERNAL_SERVER_ERROR: 500,
    ErrorCode.REQUEST_TIMEOUT: 504,
}

# Codes a GraphQL mutation never turns into a typed result: they fail the whole request.
TRANSPORT_CODES = frozenset(_STATUS)


def status_for(code: ErrorCode) -> int:
    """The HTTP status of a reply carrying ``code``: 200 unless it is a transport failure."""
    return _STATUS.get(code, 200)


def encode_json(content: Any) -> bytes:
    """``content`` as JSON: orjson, or the standard library for what orjson cannot write (an
    integer beyond 64 bits, stored before such integers were refused)."""
    try:
        return orjson.dumps(content)
    except TypeError:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode_json(content)


# The REST reply header carrying an error's hint (see ``CmdbError.hint``).
HINT_HEADER = "X-Cmdbgraph-Hint"


class Envelope:
    """How one family of REST routes wraps its answers.

    ESB (``/api/c/compapi/...``): ``{result, code, message, permission, request_id, data}``.
    Native (``/api/v3/...``): ``{result, bk_error_code, bk_error_msg, permission, data}``.
    Both echo the request id in the ``X-Request-ID`` header.
    """

    def __init__(self, *, esb: bool, gateway: bool = False) -> None:
        self.esb = esb
        self.gateway = gateway

    def body(
        self,
        *,
        code: int,
        message: str,
        data: Any,
        request_id: str,
        permission: dict | None = None,
    ) -> dict:
        if self.gateway:
            # Upstream's apiserver renames the native keys for the gateway's callers; the
            # renamed keys come first.
            body = {
                "code": code,
                "message": message,
                "result": code == 0,
                "permission": permission,
                "data": data,
            }
            if code == ErrorCode.PERMISSION_DENIED.value:
                del body["data"]
            return body
        if self.esb:
            return {
                "result": code == 0,
                "code": code,
                "message": message,
                "permission": permission,
                "request_id": request_id,
                "data": data,
            }
        body = {
            "result": code == 0,
            "bk_error_code": code,
            "bk_error_msg": message,
            "permission": permission,
            "data": data,
        }
        if code == ErrorCode.PERMISSION_DENIED.value:
            # Upstream writes its denial as the bare BaseResp: no data key at all.
            del body["data"]
        return body

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

    def failure(
        self,
        error: CmdbError,
        *,
        request_id: str,
        language: str,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        """``error`` in this envelope; the status is the code's unless ``status`` is given. Its
        hint, if any, goes in the X-Cmdbgraph-Hint header (the body is upstream's)."""
        if error.hint:
            headers = {**(headers or {}), HINT_HEADER: error.hint}
        return self._response(
            self.body(
                code=error.code.value,
                message=error.message(language),
                data=None,
                request_id=request_id,
                permission=error.permission,
            ),
            request_id,
            status_code=status_for(error.code) if status is None else status,
            headers=headers,
        )

    @staticmethod
    def _response(
        body: dict, request_id: str, status_code: int = 200, headers: dict | None = None
    ) -> JSONResponse:
        return JSONResponse(
            body, status_code=status_code, headers={"X-Request-ID": request_id, **(headers or {})}
        )


ESB = Envelope(esb=True)
NATIVE = Envelope(esb=False)
# Native routes called through the BlueKing API gateway (a verified X-Bkapi-JWT).
GATEWAY = Envelope(esb=False, gateway=True)


def graphql_errors(
    message: str, code: str, bk_error_code: int | None = None, hint: str = ""
) -> dict:
    """A GraphQL response body holding one request-level error."""
    extensions: dict[str, object] = {"code": code}
    if bk_error_code is not None:
        extensions["bkErrorCode"] = bk_error_code
    if hint:
        extensions["hint"] = hint
    return {"data": None, "errors": [{"message": message, "extensions": extensions}]}


def interface(path: str) -> str:
    """Which interface a path belongs to: ``graphql``, ``rest`` or ``http``."""
    if path.startswith("/graphql"):
        return "graphql"
    if path.startswith("/api/"):
        return "rest"
    return "http"


def error_response(
    path: str,
    error: CmdbError,
    *,
    request_id: str,
    language: str,
    status: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """``error`` in the shape the client of ``path`` speaks: a GraphQL error, the ESB
    envelope or the native envelope."""
    status = status_for(error.code) if status is None else status
    if interface(path) == "graphql":
        body = graphql_errors(
            error.message(language), error.code.name, error.code.value, hint=error.hint
        )
        return JSONResponse(
            body, status_code=status, headers={"X-Request-ID": request_id, **(headers or {})}
        )
    envelope = ESB if path.startswith("/api/c/") else NATIVE
    return envelope.failure(
        error, request_id=request_id, language=language, status=status, headers=headers
    )
