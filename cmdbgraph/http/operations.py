"""What operators and clients hit besides the API: health, readiness, metrics, and the answer
for a path or method nobody serves."""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.http import identity
from cmdbgraph.http.replies import error_response, graphql_errors, interface
from cmdbgraph.services.errors import CmdbError, ErrorCode

log = logging.getLogger("cmdbgraph")


async def not_served(request: Request, error: StarletteHTTPException) -> Response:
    """A path or method nobody serves, answered in the client's shape with a code."""
    request_id = identity.request_id(request.headers, request.state)
    headers = {key: value for key, value in (error.headers or {}).items() if key.lower() == "allow"}
    path = request.url.path
    if interface(path) == "graphql":
        code = "METHOD_NOT_ALLOWED" if error.status_code == 405 else "NOT_FOUND"
        return JSONResponse(
            graphql_errors(error.detail, code),
            status_code=error.status_code,
            headers={"X-Request-ID": request_id, **headers},
        )
    # As the BlueKing API gateway answers a method and path it does not serve.
    failure = CmdbError(ErrorCode.API_NOT_FOUND, (request.method, path[:200]))
    return error_response(
        path,
        failure,
        request_id=request_id,
        language=identity.language(request.headers),
        status=error.status_code,
        headers=headers,
    )


async def healthz(_: Request) -> Response:
    """The process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers and its schema is current: ready for traffic."""
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


async def metrics(_: Request) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
