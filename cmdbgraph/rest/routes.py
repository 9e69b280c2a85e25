"""The shim's routes: every call on its ESB path and on its native route."""

from __future__ import annotations

from starlette.routing import Route

from cmdbgraph.http.replies import ESB, NATIVE
from cmdbgraph.rest import associations, catalog
from cmdbgraph.rest.endpoint import endpoint

ESB_PREFIX = "/api/c/compapi/v2/cc"
# The BlueKing SDK's default API version is empty: it calls /api/c/compapi/cc/<name>/.
ESB_PREFIXES = (ESB_PREFIX, "/api/c/compapi/cc")

# (ESB name, handler, native method, native path)
CALLS = [
    (
        "batch_create_instance_association",
        associations.batch_create_instance_association,
        "POST",
        "/api/v3/createmany/instassociation",
    ),
    (
        "add_instance_association",
        associations.add_instance_association,
        "POST",
        "/api/v3/create/instassociation",
    ),
    (
        "delete_instance_association",
        associations.delete_instance_association,
        "DELETE",
        "/api/v3/delete/instassociation/{bk_obj_id}/{id}",
    ),
    (
        "delete_related_inst_asso",
        associations.delete_related_inst_asso,
        "DELETE",
        "/api/v3/delete/instassociation/batch",
    ),
    (
        "find_instance_association",
        associations.find_instance_association,
        "POST",
        "/api/v3/find/instassociation",
    ),
    (
        "search_related_inst_asso",
        associations.search_related_inst_asso,
        "POST",
        "/api/v3/find/instassociation/related",
    ),
    (
        "find_object_association",
        catalog.find_object_association,
        "POST",
        "/api/v3/find/objectassociation",
    ),
    ("search_objects", catalog.search_objects, "POST", "/api/v3/find/object"),
    (
        "search_inst_by_object",
        catalog.search_inst_by_object,
        "POST",
        "/api/v3/find/instassociation/object/{bk_obj_id}",
    ),
]


# Older ESB names answered by the same call.
ESB_ALIASES = {"search_inst": "search_inst_by_object"}


def routes() -> list[Route]:
    found: list[Route] = []
    handlers = {name: handler for name, handler, _, _ in CALLS}
    for name, handler, method, native_path in CALLS:
        for prefix in ESB_PREFIXES:
            found.append(Route(f"{prefix}/{name}/", endpoint(name, handler, ESB), methods=["POST"]))
        found.append(Route(native_path, endpoint(name, handler, NATIVE), methods=[method]))
    for alias, name in ESB_ALIASES.items():
        for prefix in ESB_PREFIXES:
            found.append(
                Route(f"{prefix}/{alias}/", endpoint(alias, handlers[name], ESB), methods=["POST"])
            )
    from cmdbgraph.rest.openapi import OPENAPI_PATH, openapi_json

    found.append(Route(OPENAPI_PATH, openapi_json, methods=["GET"]))
    return found
