"""Builds the Starlette application from settings: GraphQL, the REST shim, GraphiQL, the
topology page and the API docs, health and metrics, behind the request middleware."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import sys
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute

from cmdbgraph import metrics
from cmdbgraph.api import build_schema
from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database, DatabaseUnavailable
from cmdbgraph.http import api_docs, gateway, graphiql, identity, operations, topology_page
from cmdbgraph.http.graphql_view import GraphQLEndpoint, GraphQLView
from cmdbgraph.http.middleware import RequestMiddleware
from cmdbgraph.rest.routes import routes as rest_routes
from cmdbgraph.services import accounts, events
from cmdbgraph.services.limits import Limits
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph")


def command() -> str:
    """How the operator runs the command line here: ``cmdbgraph`` when it is on the PATH,
    else its path beside this Python (``.venv/bin/cmdbgraph`` after scripts/demo.sh)."""
    if shutil.which("cmdbgraph"):
        return "cmdbgraph"
    beside = Path(sys.executable).with_name("cmdbgraph")
    if beside.exists():
        relative = os.path.relpath(beside)
        return str(beside) if relative.startswith("..") else relative
    return "cmdbgraph"


def _middleware(settings: Settings) -> list[Middleware]:
    middleware = [
        Middleware(
            RequestMiddleware,
            max_body_bytes=settings.max_body_bytes,
            timeout_seconds=settings.request_timeout_seconds,
            trusted_proxies=identity.TrustedProxies(settings.trusted_proxies),
        )
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=["X-Request-ID", "X-Cmdbgraph-Hint"],
            )
        )
    return middleware


# A path or method nobody serves, answered in the client's shape (Starlette types handlers of
# HTTPException as handlers of any exception: hence Any).
_EXCEPTION_HANDLERS: dict[Any, Any] = {StarletteHTTPException: operations.not_served}


async def _sweep_events(db: Database, settings: Settings) -> None:
    """Keep the change stream within its retention: now, then every hour."""
    retention = timedelta(days=settings.event_retention_days)
    while True:
        try:
            swept = await events.sweep(db, retention)
            if swept:
                log.info("swept %d events older than %s", swept, retention)
        except DatabaseUnavailable:
            pass  # logged by the database layer; the next round tries again
        except Exception:
            log.exception("sweeping events failed")
        await asyncio.sleep(_SWEEP_SECONDS)


_SWEEP_SECONDS = 3600


# The gauge reads the count the subscriptions keep (services/events.FOLLOWERS).
metrics.SUBSCRIPTIONS.set_function(lambda: events.FOLLOWERS.taken)


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> Starlette:
    """The ASGI application. ``db`` defaults to a new ``Database`` for ``settings``."""
    settings = settings or Settings()
    db = db or Database(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        if await migrate.pending(db):
            message = (
                f"the database schema is at revision {await migrate.current_revision(db)!r}, "
                f"this code needs {migrate.head_revision()!r}: run `{command()} db upgrade`"
            )
            log.error(message)
            await db.dispose()
            raise RuntimeError(message)
        if not settings.auth:
            log.warning(
                "AUTHENTICATION IS OFF (CMDBGRAPH_AUTH=false): anyone who reaches this server "
                "can read and write everything. Use this for local experiments only."
            )
        elif await accounts.has_demo_credentials(db):
            log.warning(
                "THIS DATABASE HOLDS THE PUBLIC DEMO CREDENTIALS (app esb_test / secret xxx, "
                "token xxx): anyone can use them. Revoke them before real use: "
                f"`{command()} apps revoke esb_test` and `{command()} tokens revoke xxx`."
            )
        # Objects alive after start-up never need scanning again: full collections stay short.
        gc.collect()
        gc.freeze()
        log.info("cmdbgraph ready on %s", db.dialect)
        sweeping = asyncio.create_task(_sweep_events(db, settings))
        try:
            yield
        finally:
            sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
            await db.dispose()

    limits = Limits.from_settings(settings)
    graphql = GraphQLView(build_schema(settings), settings, limits, db)
    app = Starlette(
        routes=[
            Route("/graphql", GraphQLEndpoint(graphql), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),  # subscriptions (http/subscriptions.py)
            graphiql.static_mount(),
            Route(api_docs.DOCS_PATH, api_docs.page, methods=["GET"]),
            api_docs.static_mount(),
            Route(topology_page.PAGE_PATH, topology_page.page, methods=["GET"]),
            topology_page.static_mount(),
            Route("/healthz", operations.healthz, methods=["GET"]),
            Route("/readyz", operations.readyz, methods=["GET"]),
            Route("/metrics", operations.metrics, methods=["GET"]),
            *rest_routes(),
        ],
        lifespan=lifespan,
        middleware=_middleware(settings),
        exception_handlers=_EXCEPTION_HANDLERS,
    )
    app.state.settings = settings
    app.state.limits = limits
    app.state.db = db
    app.state.trusted_proxies = identity.TrustedProxies(settings.trusted_proxies)
    app.state.gateway = gateway.verifier(settings.apigw_public_key)
    return app


def serve_app() -> Starlette:
    """The factory ``cmdbgraph serve`` runs in each worker: logging set up, then the app."""
    from cmdbgraph import logs

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return create_app(settings)
