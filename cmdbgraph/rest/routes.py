"""The shim's routes: every call on its ESB path and on its native route."""

from __future__ import annotations

from starlette.routing import Route

from cmdbgraph.rest import handlers
from cmdbgraph.rest.handlers import ESB, NATIVE, endpoint

ESB_PREFIX = "/api/c/compapi/v2/cc"


def routes() -> list[Route]:
    # (ESB name, handler, native method, native path)
    calls = [
        (
            "batch_create_instance_association",
            handlers.batch_create_instance_association,
            "POST",
            "/api/v3/createmany/instassociation",
        ),
    ]
    found: list[Route] = []
    for name, handler, method, native_path in calls:
        found.append(Route(f"{ESB_PREFIX}/{name}/", endpoint(name, handler, ESB), methods=["POST"]))
        found.append(Route(native_path, endpoint(name, handler, NATIVE), methods=[method]))
    return found
