"""Builds the Starlette application from settings."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

import orjson
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from strawberry.asgi import GraphQL

from cmdbgraph import graphiql
from cmdbgraph.db.engine import Database
from cmdbgraph.metrics import metrics_endpoint
from cmdbgraph.middleware import RequestMiddleware
from cmdbgraph.resolvers.context import GraphQLContext
from cmdbgraph.rest import credentials as creds
from cmdbgraph.rest.routes import routes as rest_routes
from cmdbgraph.schema.build import build_schema
from cmdbgraph.schema.extensions import MASKED_MESSAGE
from cmdbgraph.services import auth
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import CmdbError
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph")


class GraphQLView(GraphQL):
    """Strawberry's ASGI view with our context and a faster JSON encoder."""

    def __init__(self, settings: Settings, db: Database) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql else None,
        )
        self.settings = settings
        self.db = db

    async def get_context(self, request: Request, response: Response) -> GraphQLContext:
        # Every request but the IDE page was authenticated by GraphQLEndpoint; strawberry
        # builds a context for the page too, with nobody in it.
        caller: Caller = getattr(request.state, "caller", None) or Caller(
            language=creds.language(request.headers),
            request_id=creds.request_id(request.headers, request.state),
        )
        response.headers["X-Request-ID"] = caller.request_id
        return GraphQLContext(
            request=request, response=response, db=self.db, settings=self.settings, caller=caller
        )

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def parse_json(self, data: str | bytes) -> object:
        if (b"\\u0000" if isinstance(data, bytes) else "\\u0000") in data:
            raise HTTPException(400, "NUL characters are not accepted")
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql.page_response()  # vendored assets: works with no internet access


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
            try:
                request.state.caller = await creds.identify(request)
            except CmdbError as error:
                language = creds.language(request.headers)
                await self._refuse(
                    request,
                    error.http_status,
                    error.message(language),
                    error.code.name,
                    error.code.value,
                )(scope, receive, send)
                return
            except Exception:
                log.exception("identifying the GraphQL caller failed")
                await self._refuse(request, 500, MASKED_MESSAGE, "INTERNAL_SERVER_ERROR", None)(
                    scope, receive, send
                )
                return
        await self.view(scope, receive, send)

    @staticmethod
    def _refuse(
        request: Request, status: int, message: str, code: str, bk_error_code: int | None
    ) -> Response:
        extensions: dict[str, object] = {"code": code}
        if bk_error_code is not None:
            extensions["bkErrorCode"] = bk_error_code
        return JSONResponse(
            {"data": None, "errors": [{"message": message, "extensions": extensions}]},
            status_code=status,
            headers={"X-Request-ID": creds.request_id(request.headers, request.state)},
        )


async def healthz(_: Request) -> Response:
    """The process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers and its schema is current: ready for traffic."""
    from cmdbgraph.db import migrate

    db: Database = request.app.state.db
    try:
        behind = await migrate.pending(db)
    except Exception as error:  # any database failure means "not ready"
        log.warning("readiness check failed: %s", type(error).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
    if behind:
        return JSONResponse(
            {"status": "unavailable", "database": "migrations pending: run cmdbgraph db upgrade"},
            503,
        )
    return JSONResponse({"status": "ready", "database": db.dialect})


def _middleware(settings: Settings) -> list[Middleware]:
    middleware = [
        Middleware(
            RequestMiddleware,
            max_body_bytes=settings.max_body_bytes,
            timeout_seconds=settings.request_timeout_seconds,
        )
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=["X-Request-ID"],
            )
        )
    return middleware


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> Starlette:
    """The ASGI application. ``db`` defaults to a new ``Database`` for ``settings``."""
    settings = settings or Settings()
    db = db or Database(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        # Objects alive after start-up never need scanning again: full collections stay short.
        from cmdbgraph.db import migrate

        if await migrate.pending(db):
            message = (
                f"the database schema is at revision {await migrate.current_revision(db)!r}, "
                f"this code needs {migrate.head_revision()!r}: run `cmdbgraph db upgrade`"
            )
            log.error(message)
            await db.dispose()
            raise RuntimeError(message)
        if not settings.auth:
            log.warning(
                "AUTHENTICATION IS OFF (CMDBGRAPH_AUTH=false): anyone who reaches this server "
                "can read and write everything. Use this for local experiments only."
            )
        elif await auth.has_demo_credentials(db):
            log.warning(
                "THIS DATABASE HOLDS THE PUBLIC DEMO CREDENTIALS (app esb_test / secret xxx, "
                "token xxx): anyone can use them. Revoke them before real use: "
                "`cmdbgraph apps revoke esb_test` and `cmdbgraph tokens revoke xxx`."
            )
        gc.collect()
        gc.freeze()
        log.info("cmdbgraph ready on %s", db.dialect)
        try:
            yield
        finally:
            await db.dispose()

    graphql = GraphQLView(settings, db)
    app = Starlette(
        routes=[
            Route("/graphql", GraphQLEndpoint(graphql), methods=["GET", "POST"]),
            graphiql.static_mount(),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *rest_routes(),
        ],
        lifespan=lifespan,
        middleware=_middleware(settings),
    )
    app.state.settings = settings
    app.state.db = db
    return app


def serve_app() -> Starlette:
    """The factory ``cmdbgraph serve`` runs in each worker: logging set up, then the app."""
    from cmdbgraph import logs

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return create_app(settings)
