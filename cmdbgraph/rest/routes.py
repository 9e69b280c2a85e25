"""The shim's routes, made from the declarations: every call on its ESB paths (with and without
the API version, and under its older names) and on its native route."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cmdbgraph.http.replies import ESB, NATIVE

# Importing the call modules declares their calls.
from cmdbgraph.rest import associations, catalog, catalog_changes, related, watch  # noqa: F401
from cmdbgraph.rest.declarations import CALLS, RestCall
from cmdbgraph.rest.endpoint import endpoint

OPENAPI_PATH = "/api/openapi.json"
ESB_PREFIX = "/api/c/compapi/v2/cc"
# The BlueKing SDK's default API version is empty: it calls /api/c/compapi/cc/<name>/.
ESB_PREFIXES = (ESB_PREFIX, "/api/c/compapi/cc")


def esb_names(call: RestCall) -> tuple[str, ...]:
    """The names a call answers to on the ESB paths."""
    return (call.name, *call.aliases)


async def openapi_json(request: Request) -> Response:
    """``GET /api/openapi.json``: the document, under the limits in force."""
    from cmdbgraph.rest.openapi import document_bytes

    return Response(document_bytes(request.app.state.limits), media_type="application/json")


def routes() -> list[Route]:
    found: list[Route] = [Route(OPENAPI_PATH, openapi_json, methods=["GET"])]
    for call in CALLS:
        for name in esb_names(call):
            for prefix in ESB_PREFIXES:
                found.append(
                    Route(f"{prefix}/{name}/", endpoint(name, call, ESB), methods=["POST"])
                )
        for path in (call.path, *(more for more, _ in call.more_paths)):
            found.append(Route(path, endpoint(call.name, call, NATIVE), methods=[call.method]))
    return found
