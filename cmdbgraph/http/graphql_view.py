"""GraphQL over HTTP: the view that runs the schema for a request, and the endpoint in front of
it that authenticates every request but the GraphiQL page. Every refusal is a JSON body with
``errors[].extensions.code``, and errors that fail the whole request carry their HTTP status
(see ``replies``)."""

from __future__ import annotations

import logging

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult

from cmdbgraph.db.engine import Database, DatabaseUnavailable
from cmdbgraph.http import graphiql, identity, jsonbody
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
    refusal as a JSON body with ``errors[].extensions.code``."""

    def __init__(self, schema, settings: Settings, limits: Limits, db: Database) -> None:
        super().__init__(schema, graphql_ide="graphiql" if settings.graphiql else None)
        self.settings = settings
        self.limits = limits
        self.db = db

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
        await response(scope, receive, send)

    @staticmethod
    def _refusal(request: Request, error: TransportError) -> Response:
        headers = {"X-Request-ID": identity.request_id(request.headers, request.state)}
        if error.allow:
            headers["Allow"] = error.allow
        return JSONResponse(
            graphql_errors(error.message, error.code), status_code=error.status, headers=headers
        )

    async def get_context(  # type: ignore[override]  # HTTP only: no websocket route
        self, request: Request, response: Response
    ) -> GraphQLContext:
        # Every request but the IDE page was authenticated by GraphQLEndpoint; strawberry
        # builds a context for the page too, with nobody in it.
        caller: Caller = getattr(request.state, "caller", None) or Caller(
            language=identity.language(request.headers),
            request_id=identity.request_id(request.headers, request.state),
        )
        response.headers["X-Request-ID"] = caller.request_id
        return GraphQLContext(
            request=request,
            response=response,
            db=self.db,
            settings=self.settings,
            limits=self.limits,
            caller=caller,
        )

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

    async def parse_http_body(self, request):
        data = await super().parse_http_body(request)
        if not isinstance(data, list) and not data.query:
            if isinstance(data.extensions, dict) and "persistedQuery" in data.extensions:
                # What Apollo Client and urql expect when the server keeps no persisted
                # queries: they send the full query instead.
                raise TransportError(
                    400, "PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED"
                )
            raise TransportError(400, "The request holds no GraphQL query.", "BAD_REQUEST")
        return data

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


class GraphQLEndpoint:
    """Authenticates every GraphQL request (not the GraphiQL page itself), then hands it to
    the view. A request that fails authentication gets a GraphQL-shaped 401."""

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
            and "text/html" in request.headers.get("accept", "")
        )
        if not wants_ide:
            refusal = await self._identify(request)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.view(scope, receive, send)

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
