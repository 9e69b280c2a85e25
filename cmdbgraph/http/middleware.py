"""ASGI middleware: request ids, one JSON log line per request with metrics, body size and
time limits. Expected failures answer in the shape the client speaks (GraphQL or BlueKing)."""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.datastructures import Headers

from cmdbgraph import metrics
from cmdbgraph.http import identity
from cmdbgraph.http.replies import error_response, interface
from cmdbgraph.services.errors import CmdbError, ErrorCode

log = logging.getLogger("cmdbgraph.access")

_QUIET_PATHS = ("/healthz", "/readyz", "/metrics", "/static/")


async def _answer(send, scope, status: int, code: ErrorCode, args: tuple) -> None:
    headers = Headers(scope=scope)
    response = error_response(
        scope["path"],
        CmdbError(code, args, trim=True),
        request_id=scope["state"]["request_id"],
        language=identity.language(headers),
        status=status,
    )
    await response(scope, _no_receive, send)


async def _no_receive():  # pragma: no cover - a response never reads the request
    return {"type": "http.disconnect"}


def _holds_nul(scope) -> bool:
    query = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


class _BodyTooLarge(Exception):
    pass


class RequestMiddleware:
    """Assigns the request id, enforces the body size and time limits, logs and measures."""

    def __init__(
        self,
        app,
        *,
        max_body_bytes: int,
        timeout_seconds: float,
        trusted_proxies: identity.TrustedProxies,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["request_id"] = identity.request_id(Headers(scope=scope))
        state["log"] = {}
        started = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
            await send(message)

        declared = dict(scope.get("headers", ())).get(b"content-length")
        received = 0

        async def receive_wrapper():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        too_large = ("request body", self.max_body_bytes)
        try:
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await _answer(send_wrapper, scope, 413, ErrorCode.EXCEEDS_LIMIT, too_large)
            elif _holds_nul(scope):
                # PostgreSQL cannot store NUL in text and no field needs one: refused where it
                # enters, in the path or the query string (bodies: see http/jsonbody.py).
                await _answer(send_wrapper, scope, 400, ErrorCode.INPUT_INVALID, ())
            else:
                async with asyncio.timeout(self.timeout_seconds):
                    await self.app(scope, receive_wrapper, send_wrapper)
        except _BodyTooLarge:
            if not status["started"]:
                await _answer(send_wrapper, scope, 413, ErrorCode.EXCEEDS_LIMIT, too_large)
        except TimeoutError:
            state["log"]["outcome"] = "timeout"
            if not status["started"]:
                await _answer(
                    send_wrapper,
                    scope,
                    504,
                    ErrorCode.REQUEST_TIMEOUT,
                    (f"{self.timeout_seconds:g}",),
                )
        finally:
            self._finish(scope, state, status["code"], time.perf_counter() - started)

    def _finish(self, scope, state: dict, status: int, seconds: float) -> None:
        path = scope["path"]
        fields = state["log"]
        kind = interface(path)
        operation = fields.get("operation") or ("other" if kind != "http" else path)
        outcome = fields.get("outcome") or ("ok" if status < 400 else f"http_{status}")
        if kind != "http":
            metrics.observe_request(kind, operation, outcome, seconds)
        if (path.startswith(_QUIET_PATHS) and status < 400) or not log.isEnabledFor(logging.INFO):
            return  # nothing to format: the line would not be written
        log.info(
            "%s %s %s",
            scope["method"],
            path,
            status,
            extra={
                "request_id": state["request_id"],
                "client": identity.client_address(
                    scope, Headers(scope=scope), self.trusted_proxies
                ),
                "method": scope["method"],
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "interface": kind,
                "operation": operation,
                "client_operation": fields.get("client_operation"),
                "app": fields.get("app"),
                "user": fields.get("user"),
                "outcome": outcome,
            },
        )
