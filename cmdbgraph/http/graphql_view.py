"""GraphQL over HTTP: the view that runs the schema for a request, and the endpoint in front of
it that authenticates every request but the GraphiQL page and, while introspection is on, a
document asking only for the schema. Every refusal is a JSON body with
``errors[].extensions.code``, and errors that fail the whole request carry their HTTP status
(see ``replies``). Persisted queries (a document's hash instead of its text, the allow-list)
are applied as the request is read (see ``persisted``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from cross_web import HTTPException
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType as StrawberryOperationType
from strawberry.types.unset import UNSET

from cmdbgraph.db.engine import Database, DatabaseUnavailable
from cmdbgraph.http import graphiql, identity, jsonbody, persisted, subscriptions
from cmdbgraph.http.replies import encode_json, error_response, graphql_errors, status_for
from cmdbgraph.schema.context import GraphQLContext
from cmdbgraph.schema.extensions import MASKED_MESSAGE, mask
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import CmdbError, ErrorCode, database_unavailable
from cmdbgraph.services.limits import Limits
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph")


class TransportError(Exception):
    """A GraphQL request refused before execution: its HTTP status, message and code."""

    def __init__(self, status: int, message: str, code: str, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.allow = allow  # the methods to use instead, on a 405


def _transport_error(error: HTTPException) -> TransportError:
    """Strawberry's plain-text refusals, given the status and code a GraphQL client expects."""
    cause = error.__cause__
    if isinstance(cause, InvalidOperationTypeError):
        return TransportError(405, f"{error.reason}.", "METHOD_NOT_ALLOWED", allow="POST")
    if isinstance(cause, CannotGetOperationTypeError):
        return TransportError(400, error.reason, "OPERATION_RESOLUTION_FAILURE")
    if error.status_code == 405:
        return TransportError(405, error.reason, "METHOD_NOT_ALLOWED", allow="GET, POST")
    if error.status_code == 404:
        return TransportError(404, error.reason, "NOT_FOUND")
    if error.reason == "Unsupported content type":
        return TransportError(
            415, "Send the request as application/json.", "UNSUPPORTED_MEDIA_TYPE"
        )
    if error.reason == "Batching is not enabled":
        return TransportError(400, "Batched requests are not supported.", "BAD_REQUEST")
    return TransportError(error.status_code, error.reason, "BAD_REQUEST")


class GraphQLView(GraphQL):
    """Strawberry's ASGI view with our context, our JSON decoder and encoder, and every
    refusal as a JSON body with ``errors[].extensions.code``; and subscriptions over
    websockets (see ``subscriptions``)."""

    graphql_transport_ws_handler_class = subscriptions.TransportWSHandler
    websocket_adapter_class = subscriptions.TextWebSocketAdapter

    def __init__(self, schema, settings: Settings, limits: Limits, db: Database) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=settings.websocket_init_timeout_seconds),
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
            # Browsers' pages from these origins may open websockets too (same-origin pages
            # always may); other clients send no Origin.
            allowed_origins=settings.cors_origins,
        )
        self.settings = settings
        self.limits = limits
        self.db = db
        self.persisted = persisted.PersistedQueryGate(settings, db, self._public_introspection)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as error:
            response = self._refusal(request, _transport_error(error))
        except TransportError as error:
            response = self._refusal(request, error)
        except DatabaseUnavailable:  # reading a persisted query, before execution
            response = error_response(
                request.url.path,
                database_unavailable(),
                request_id=identity.request_id(request.headers, request.state),
                language=identity.language(request.headers),
            )
        await response(scope, receive, send)

    @staticmethod
    def _refusal(request: Request, error: TransportError) -> Response:
        headers = {"X-Request-ID": identity.request_id(request.headers, request.state)}
        if error.allow:
            headers["Allow"] = error.allow
        return JSONResponse(
            graphql_errors(error.message, error.code), status_code=error.status, headers=headers
        )

    async def get_context(  # type: ignore[override]
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> GraphQLContext:
        # Every request but the IDE page was authenticated by GraphQLEndpoint; strawberry
        # builds a context for the page too, with nobody in it. A websocket's caller is
        # proven at its connection_init (on_ws_connect).
        caller: Caller = getattr(request.state, "caller", None) or Caller(
            language=identity.language(request.headers),
            request_id=identity.request_id(request.headers, request.state),
        )
        websocket = isinstance(request, WebSocket)
        if isinstance(response, Response):
            response.headers["X-Request-ID"] = caller.request_id
        return GraphQLContext(
            request=request,
            response=response if isinstance(response, Response) else None,
            db=self.db,
            settings=self.settings,
            limits=self.limits,
            caller=caller,
            # A connection lives for hours: what it reads must not be served from a cache
            # filled an hour ago.
            cache_loads=not websocket,
        )

    async def on_ws_connect(self, context: GraphQLContext):  # type: ignore[override]
        """Authenticate the connection from its ``connection_init`` payload (or its
        handshake's headers): refused with 4403 and the reason."""
        params = context.connection_params or {}
        try:
            caller = await identity.identify_connection(context.request, params)
        except CmdbError as error:
            headers = identity.connection_headers(context.request, params)
            message = error.message(identity.language(headers))
            raise subscriptions.Refused(subscriptions.FORBIDDEN, f"Forbidden: {message}") from None
        except DatabaseUnavailable:
            raise subscriptions.Refused(
                subscriptions.UNAVAILABLE, "The database is unavailable: try again shortly"
            ) from None
        context.caller = caller
        return UNSET

    def encode_json(self, data: object) -> bytes:
        return encode_json(data)

    def parse_json(self, data: str | bytes) -> object:
        try:
            parsed = jsonbody.decode(data)
        except jsonbody.BodyError as error:
            raise TransportError(400, f"{error}.", "BAD_REQUEST") from None
        if not isinstance(parsed, dict | list):
            raise TransportError(400, "The request body must be a JSON object.", "BAD_REQUEST")
        return parsed

    def should_render_graphql_ide(self, request) -> bool:
        # A GET carrying only a persisted query's hash runs it, whatever it accepts (Apollo
        # Client sends Accept: */*).
        return "extensions" not in request.query_params and super().should_render_graphql_ide(
            request
        )

    async def parse_http_body(self, request):
        data = await super().parse_http_body(request)
        if isinstance(data, list):
            return data
        # Persisted queries (see persisted.py): the stored document for a hash, the refusals.
        try:
            store_as = await self.persisted.prepare(data)
        except persisted.Refused as error:
            raise TransportError(error.status, error.message, error.code) from None
        if not data.query:
            raise TransportError(400, "The request holds no GraphQL query.", "BAD_REQUEST")
        if store_as is not None:
            return _DocumentToStore(
                data.query,
                data.variables,
                data.operation_name,
                data.extensions,
                data.protocol,
                store_as=store_as,
            )
        return data

    def _public_introspection(self, query: str) -> bool:
        return self.settings.introspection and introspection_only(query, self.settings.max_tokens)

    async def execute_single(  # noqa: PLR0917  (strawberry's signature)
        self, request, request_adapter, sub_response, context, root_value, request_data
    ) -> ExecutionResult:
        # Subscriptions run over a websocket only: over HTTP, strawberry would run one as a
        # query, which can only fail.
        allowed = StrawberryOperationType.from_http(request_adapter.method) - {
            StrawberryOperationType.SUBSCRIPTION
        }
        if not self.allow_queries_via_get and request_adapter.method == "GET":
            allowed -= {StrawberryOperationType.QUERY}
        try:
            result = await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except InvalidOperationTypeError as error:
            if error.operation_type is StrawberryOperationType.SUBSCRIPTION:
                raise TransportError(400, SUBSCRIPTION_OVER_HTTP, "WEBSOCKET_REQUIRED") from None
            raise HTTPException(400, error.as_http_error_reason(request_adapter.method)) from error
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error
        if isinstance(request_data, _DocumentToStore) and request_data.query:
            await self.persisted.store_validated(request_data.store_as, request_data.query, result)
        return result

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            language = identity.language(request.headers)
            result.errors = [mask(error, language) for error in result.errors]
        return await super().process_result(request, result)

    def create_response(self, response_data, sub_response: Response) -> Response:
        # Transport-level failures raised while executing (authentication, the database out
        # of reach) carry their HTTP status, as they do when raised before execution.
        for error in response_data.get("errors") or ():
            code = (error.get("extensions") or {}).get("bkErrorCode")
            status = status_for(ErrorCode(code)) if code in _ERROR_CODE_VALUES else 200
            if status != 200:
                sub_response.status_code = status
                break
        return super().create_response(response_data, sub_response)

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql.page_response()  # vendored assets: works with no internet access


_ERROR_CODE_VALUES = frozenset(code.value for code in ErrorCode)


@dataclass
class _DocumentToStore(GraphQLRequestData):
    """A request whose document came with its hash (automatic persisted queries): stored
    under ``store_as`` once it ran, unless it did not parse or validate."""

    store_as: str = ""


SUBSCRIPTION_OVER_HTTP = (
    "Subscriptions run over a websocket at this path (the graphql-transport-ws protocol), "
    "not over HTTP."
)


# The fields every type answers from the schema alone, never from the data.
INTROSPECTION_FIELDS = frozenset({"__schema", "__type", "__typename"})


def introspection_only(query: str, max_tokens: int | None = None) -> bool:
    """Whether ``query`` is a document of queries that select only ``__schema``, ``__type`` and
    ``__typename`` at their root, through fragments too: what GraphiQL sends to load the
    schema, which reads no data. False for anything else, a document that does not parse
    included (the normal path answers it)."""
    if "__schema" not in query and "__type" not in query:
        return False  # the common case, decided without parsing
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except (GraphQLError, RecursionError):
        return False
    return _introspection_only(document)


def _introspection_only(document: DocumentNode) -> bool:
    fragments: dict[str, FragmentDefinitionNode] = {}
    roots: list[SelectionSetNode] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
        elif (
            isinstance(definition, OperationDefinitionNode)
            and definition.operation is OperationType.QUERY
        ):
            roots.append(definition.selection_set)
        else:
            return False  # a mutation, a subscription, a type definition
    if not roots:
        return False
    # Every selection at the root of an operation, inline fragments and named fragments
    # opened (each once: a cycle is the validation's to refuse).
    pending = list(roots)
    opened: set[str] = set()
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                if selection.name.value not in INTROSPECTION_FIELDS:
                    return False
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in fragments:
                    return False
                if name not in opened:
                    opened.add(name)
                    pending.append(fragments[name].selection_set)
            else:
                return False
    return True


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives ``body`` again (it was read already), then the rest."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class GraphQLEndpoint:
    """Authenticates every GraphQL request, then hands it to the view. A request that fails
    authentication gets a GraphQL-shaped 401. Public: the GraphiQL page itself, and while
    introspection is on a document that only introspects (GraphiQL loads the schema before
    anyone has credentials): when its credentials are missing or refused, it runs for an
    anonymous caller."""

    def __init__(self, view: GraphQLView) -> None:
        self.view = view

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        # Only the IDE page itself is public: a GET carrying a query runs it, so it is
        # authenticated like any other request.
        wants_ide = (
            self.view.settings.graphiql
            and request.method == "GET"
            and "query" not in request.query_params
            and "extensions" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )
        if not wants_ide:
            refusal = await self._identify(request)
            if refusal is not None:
                # Checked only now: a request with good credentials pays nothing for it.
                public, receive = await self._only_introspects(request, receive)
                if not public:
                    await refusal(scope, receive, send)
                    return
        await self.view(scope, receive, send)

    async def _only_introspects(self, request: Request, receive: Receive) -> tuple[bool, Receive]:
        """Whether the request's document only introspects (and introspection is on), and
        the receive channel for the view: the body again, when this read it."""
        settings = self.view.settings
        if not settings.introspection:
            return False, receive
        if request.method == "GET":
            query = request.query_params.get("query")
        elif request.method == "POST" and "json" in request.headers.get("content-type", ""):
            body = await request.body()
            receive = _replaying(body, receive)
            if b"__schema" not in body and b"__type" not in body:
                return False, receive
            try:
                data = jsonbody.decode(body)
            except jsonbody.BodyError:
                return False, receive
            query = data.get("query") if isinstance(data, dict) else None
        else:
            return False, receive
        if not isinstance(query, str):
            return False, receive
        return introspection_only(query, settings.max_tokens), receive

    @staticmethod
    async def _identify(request: Request) -> Response | None:
        """Sets the caller on the request; the refusal to send when there is none."""
        request_id = identity.request_id(request.headers, request.state)
        language = identity.language(request.headers)
        try:
            request.state.caller = await identity.identify(request)
        except CmdbError as error:
            return error_response(request.url.path, error, request_id=request_id, language=language)
        except DatabaseUnavailable:
            return error_response(
                request.url.path, database_unavailable(), request_id=request_id, language=language
            )
        except Exception:
            log.exception("identifying the GraphQL caller failed (request %s)", request_id)
            return JSONResponse(
                graphql_errors(MASKED_MESSAGE, "INTERNAL_SERVER_ERROR"),
                status_code=500,
                headers={"X-Request-ID": request_id},
            )
        return None
