"""GraphQL over websockets: the ``graphql-transport-ws`` protocol (the ``graphql-ws`` package's,
which Apollo Client, urql, Relay, GraphiQL and ``gql`` speak), on strawberry's handler, made fit
for a public endpoint.

- Authentication: the ``connection_init`` payload holds the headers an HTTP request would send
  (``X-Bkapi-Authorization`` and the rest; an object value is read as its JSON text) or the ESB
  body fields (``bk_app_code``, ``bk_app_secret``, ``bk_username``, ``bk_token``); without
  them, the handshake's own headers count, as for HTTP. A connection that cannot be
  authenticated is closed with 4403 and the reason; one that sends no ``connection_init`` in
  time, with 4408.
- Messages that are not what the protocol says (not an object, a ``subscribe`` without a query
  string) close the connection with 4400 and what was wrong, never a traceback.
- Text frames: browsers' clients read JSON from text frames only.
- A subscriber that does not read what it is sent within ``subscription_send_timeout_seconds``
  is dropped with 4429 and a reason telling it to resume by cursor: the server holds at most one
  message for it, however far behind it is (its events stay in the table).

The legacy ``graphql-ws`` subprotocol (subscriptions-transport-ws, unmaintained since 2018) is
not offered: such a client is told 4406.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import orjson
from graphql import GraphQLError
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema import BaseSchema
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types.execution import PreExecutionError
from strawberry.utils.aio import aclosing

from cmdbgraph import metrics
from cmdbgraph.http import persisted
from cmdbgraph.schema.extensions import mask

log = logging.getLogger("cmdbgraph.subscriptions")

# Close codes, as the graphql-ws client reads them.
BAD_REQUEST = 4400
FORBIDDEN = 4403
TOO_SLOW = 4429
UNAVAILABLE = 1013  # try again later
# The longest close reason a websocket frame carries.
_REASON_BYTES = 123


def reason_text(text: str) -> str:
    """``text`` cut to what a close frame can carry (whole characters)."""
    encoded = text.encode()
    if len(encoded) <= _REASON_BYTES:
        return text
    return encoded[: _REASON_BYTES - 3].decode(errors="ignore") + "..."


class Refused(Exception):
    """A connection refused at ``connection_init``: its close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason_text(reason)


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """Sends JSON in text frames (the view's encoder gives bytes, for HTTP bodies)."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


def _problem(message: object) -> str | None:
    """What is wrong with a client's message, by the protocol; None when nothing is."""
    if not isinstance(message, dict):
        return "A message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str):
        return "A message needs a type"
    if kind == "subscribe":
        ident = message.get("id")
        if not isinstance(ident, str) or not ident:
            return "subscribe needs an id string"
        payload = message.get("payload")
        if not isinstance(payload, dict):
            return "subscribe needs a payload object"
        if not isinstance(payload.get("query"), str):
            return "subscribe needs a query string"
        if payload.get("variables") is not None and not isinstance(payload["variables"], dict):
            return "variables must be an object"
        name = payload.get("operationName")
        if name is not None and not isinstance(name, str):
            return "operationName must be a string"
    elif kind == "complete" and not isinstance(message.get("id"), str):
        return "complete needs an id string"
    return None


class _MaskingSchema:
    """The schema, whose streams' errors are masked as HTTP replies' are (``mask``: a code in
    ``extensions``, the caller's language, nothing internal shown). In allow-list mode
    (``CMDBGRAPH_PERSISTED_QUERIES=allowlist``) only registered documents run, as over HTTP:
    another is answered with an ``error`` message, ``PERSISTED_QUERY_NOT_ALLOWED``."""

    def __init__(
        self, schema: BaseSchema, gate: persisted.PersistedQueryGate | None = None
    ) -> None:
        self._schema = schema
        self._gate = gate

    def __getattr__(self, name: str):
        return getattr(self._schema, name)

    async def stream(self, query, **kwargs):
        language = kwargs["context_value"].language
        if self._gate is not None and self._gate.mode == "allowlist":
            try:
                await self._gate.require_registered(query)
            except persisted.Refused as refused:
                error = GraphQLError(refused.message, extensions={"code": refused.code})
                return _refusal(error)
            except Exception as failure:  # the database out of reach: coded as over HTTP
                return _refusal(mask(GraphQLError(str(failure), original_error=failure), language))
        source = await self._schema.stream(query, **kwargs)
        return _masked(source, language)


async def _refusal(error: GraphQLError):
    yield PreExecutionError(data=None, errors=[error])


async def _masked(source, language: str):
    async with aclosing(source):
        try:
            async for result in source:
                if result.errors:
                    result.errors = [mask(error, language) for error in result.errors]
                yield result
        except GraphQLError as error:
            # The parser cache raises a syntax error rather than returning it: the protocol
            # closes with 4400 and its message, as for one returned.
            yield PreExecutionError(data=None, errors=[mask(error, language)])


class TransportWSHandler(BaseGraphQLTransportWSHandler):
    """Strawberry's ``graphql-transport-ws`` handler, with the checks and limits above."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        gate = getattr(self.view, "persisted", None)
        self.schema = _MaskingSchema(self.schema, gate)  # type: ignore[assignment]
        self._closing: set[asyncio.Task] = set()

    def _closed(self, task: asyncio.Task) -> None:
        self._closing.discard(task)
        if not task.cancelled():
            task.exception()  # the client may be gone by then: nothing to report

    async def handle_message(self, message) -> None:
        problem = _problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message) -> None:
        try:
            await super().handle_connection_init(message)
        except Refused as refused:
            log.info("websocket refused: %s", refused.reason)
            await self.websocket.close(code=refused.code, reason=refused.reason)

    async def send_message(self, message) -> None:
        seconds = self.view.settings.subscription_send_timeout_seconds  # type: ignore[attr-defined]
        try:
            # asyncio.timeout, not wait_for: see services.events._Signal.wait.
            async with asyncio.timeout(seconds):
                await self.websocket.send_json(message)
        except TimeoutError:
            await self._drop_slow_subscriber(seconds)
        except WebSocketDisconnected:
            # The client went away: a normal end, not an error to log. Its operations end
            # (the one sending at its next await).
            await self._end_operations()

    async def _end_operations(self) -> None:
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)

    async def _drop_slow_subscriber(self, seconds: float) -> None:
        if self._closing:
            return  # another operation's send gave up first
        caller = getattr(self.context, "caller", None)
        log.warning(
            "dropped a subscriber that read nothing for %s s (app %s, user %s)",
            seconds,
            getattr(caller, "app_code", ""),
            getattr(caller, "username", ""),
        )
        metrics.SUBSCRIBERS_DROPPED.inc()
        # The close frame waits behind what the client has not read: it is sent by a task of
        # its own, while the operations end now (their slots freed, nothing more queued).
        closing = asyncio.create_task(
            self.websocket.close(
                code=TOO_SLOW,
                reason=reason_text(
                    "Too slow: the subscriber did not read its messages; subscribe again "
                    "with after: the last cursor it read"
                ),
            )
        )
        self._closing.add(closing)
        closing.add_done_callback(self._closed)
        await self._end_operations()
