"""Calling the REST shim's calls as their callers do, on the ESB path or the native route, and
the demo's catalog the tests name: shared by the tests of the siblings, the catalog calls, the
searches and the conditions."""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass

from sqlalchemy import select

from cmdbgraph.db.tables import inst_associations
from cmdbgraph.services import associations
from cmdbgraph.services.caller import SYSTEM
from tests.support import upstream
from tests.support.calls import demo_headers
from tests.support.upstream import DENIED

ESB_PREFIX = "/api/c/compapi/v2/cc"
# ESB name -> (native method, native path); ``{...}`` are filled from the path arguments.
NATIVE = {
    "add_instance_association": ("POST", "/api/v3/create/instassociation"),
    "delete_instance_association": (
        "DELETE",
        "/api/v3/delete/instassociation/{bk_obj_id}/{id}",
    ),
    "delete_related_inst_asso": ("DELETE", "/api/v3/delete/instassociation/batch"),
    "find_instance_association": ("POST", "/api/v3/find/instassociation"),
    "search_related_inst_asso": ("POST", "/api/v3/find/instassociation/related"),
    "find_object_association": ("POST", "/api/v3/find/objectassociation"),
    "search_objects": ("POST", "/api/v3/find/object"),
    "search_inst_by_object": ("POST", "/api/v3/find/instance/object/{bk_obj_id}"),
    "search_inst_by_object@owner": ("POST", "/api/v3/inst/search/0/{bk_obj_id}"),
    "search_inst_by_object@gateway": ("POST", "/api/v3/inst/search/owner/0/object/{bk_obj_id}"),
    "search_inst": ("POST", "/api/v3/find/instassociation/object/{bk_obj_id}"),
    "create_object_association": ("POST", "/api/v3/create/objectassociation"),
    "update_object_association": ("PUT", "/api/v3/update/objectassociation/{id}"),
    "delete_object_association": ("DELETE", "/api/v3/delete/objectassociation/{id}"),
    "create_association_type": ("POST", "/api/v3/create/associationtype"),
    "update_association_type": ("PUT", "/api/v3/update/associationtype/{id}"),
    "delete_association_type": ("DELETE", "/api/v3/delete/associationtype/{id}"),
    "search_association_type": ("POST", "/api/v3/find/associationtype"),
    "find_instassociation_with_inst": (
        "POST",
        "/api/v3/find/instassociation/object/{bk_obj_id}/inst/detail",
    ),
    "search_inst_association_topo": (
        "POST",
        "/api/v3/find/insttopo/object/{bk_obj_id}/inst/{bk_inst_id}",
    ),
    "search_inst_asst_object_inst_base_info": (
        "POST",
        "/api/v3/findmany/inst/association/association_object/inst_base_info",
    ),
    "resource_watch": ("POST", "/api/v3/event/watch/resource/{bk_resource}"),
}
ESB_ALIASES: dict[str, str] = {}
ROUTES = ["esb", "native"]
LANGUAGES = ["zh", "en"]
ESB_CREDENTIALS = {"bk_app_code": "esb_test", "bk_app_secret": "xxx", "bk_username": "admin"}

BELONG = "bk_switch_belong_host"  # demo, n:n
DEFAULT = "bk_router_default_bk_firewall"  # demo, 1:1
CONNECT = "bk_switch_connect_host"  # preset, 1:n
MAINLINE = "host_bk_mainline_module"  # preset
DEMO_NAMES = {11: "sw-01", 13: "sw-02", 14: "sw-03", 21: "10.0.0.1", 22: "10.0.0.2", 23: "10.0.0.3"}
DEMO_NAMES |= {31: "rt-01", 32: "rt-02", 41: "fw-01", 42: "fw-02"}
# (bk_obj_asst_id) -> (bk_asst_id, source model, target model)
MODEL_ASSOCIATIONS = {
    BELONG: ("belong", "bk_switch", "host"),
    DEFAULT: ("default", "bk_router", "bk_firewall"),
    CONNECT: ("connect", "bk_switch", "host"),
}

# Upstream's codes and messages (tests/support/upstream.py); DUPLICATE names the models of
# BELONG and CONNECT.
DUPLICATE = upstream.DUPLICATE.fill(src="bk_switch", dest="host")

FIRST = "<the first stored association's id>"


def fill(value, first: int):
    """``value`` with ``FIRST`` replaced by ``first``, at any depth."""
    if value == FIRST:
        return first
    if isinstance(value, list):
        return [fill(v, first) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, first) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# Calling a sibling on either route, and what the caller sees.


@dataclass(frozen=True)
class Reply:
    status: int
    code: int
    message: str
    data: object
    permission: dict | None


async def call(
    client,
    name: str,
    route: str,
    body: dict | None = None,
    *,
    path: dict | None = None,
    language: str = "zh",
    credentials: dict | None = None,
    headers: dict | None = None,
    raw: bytes | None = None,
) -> Reply:
    """Send ``body`` (or the bytes ``raw``) to the ESB call ``name`` (or an alias) or to its
    native route.

    ESB callers carry the credentials in the body; native callers in the SDK's header, or in
    the body when ``credentials`` are given. ``path`` fills the native route's arguments (each
    quoted); without it, they are taken out of the body."""
    headers = {**(headers or {}), **({"Blueking-Language": "en"} if language == "en" else {})}
    if route == "esb" or route == "esb-alias":
        method, url = "POST", f"{ESB_PREFIX}/{name}/"
        content = {**ESB_CREDENTIALS, **(credentials or {}), **(body or {})}
    else:
        method, template = NATIVE[ESB_ALIASES.get(name, name)]
        wanted = re.findall(r"{(\w+)}", template)
        if path is None and wanted:
            body = dict(body or {})
            path = {key: body.pop(key) for key in wanted}
        url = template.format(
            **{key: urllib.parse.quote(str(value), safe="") for key, value in (path or {}).items()}
        )
        if credentials is None:
            headers = {**demo_headers(), **headers}
            content = body
        else:
            content = {**credentials, **(body or {})}
    if raw is not None:
        headers["Content-Type"] = "application/json"
        response = await client.request(method, url, content=raw, headers=headers)
    elif content is None:
        response = await client.request(method, url, headers=headers)
    else:
        headers["Content-Type"] = "application/json"
        response = await client.request(method, url, content=json.dumps(content), headers=headers)
    envelope = response.json()
    if route == "native":
        code, message = envelope["bk_error_code"], envelope["bk_error_msg"]
        keys = ["result", "bk_error_code", "bk_error_msg", "permission", "data"]
        # Upstream writes a permission denial as the bare BaseResp: no data key.
        assert list(envelope) == (keys[:-1] if code == DENIED.code else keys)
    else:
        assert list(envelope) == ["result", "code", "message", "permission", "request_id", "data"]
        code, message = envelope["code"], envelope["message"]
        assert envelope["request_id"] == response.headers["X-Request-ID"]
    assert envelope["result"] is (code == 0)
    if code != 0:
        assert envelope.get("data") is None
    if code != DENIED.code:
        assert envelope["permission"] is None
    return Reply(response.status_code, code, message, envelope.get("data"), envelope["permission"])


def assert_answer(reply: Reply, expected: tuple[int, str, str], language: str) -> None:
    assert (reply.code, reply.message) == (expected.code, expected.text(language))
    assert reply.status == 200


# ---------------------------------------------------------------------------------------------
# The database.


async def store(db, bk_obj_asst_id: str, *pairs: tuple[int, int]) -> list[int]:
    """Create associations through the service as the system; they must all succeed."""
    _, src, dest = MODEL_ASSOCIATIONS[bk_obj_asst_id]
    result = await associations.batch_create(
        db,
        SYSTEM,
        associations.BatchCreateRequest(
            src, dest, bk_obj_asst_id, [associations.Detail(*p) for p in pairs]
        ),
    )
    assert result.failed_count == 0, result.error_msg("en")
    return [item.association.id for item in result.items]


async def stored_ids(db) -> set[int]:
    async with db.read() as conn:
        return set((await conn.execute(select(inst_associations.c.id))).scalars())


def association_json(association_id: int, bk_obj_asst_id: str, src: int, dest: int) -> dict:
    """An association as upstream's calls return it: its ``InstAsst`` keys in Go's order,
    ``bk_biz_id`` left out when 0."""
    kind, src_obj, dest_obj = MODEL_ASSOCIATIONS[bk_obj_asst_id]
    return {
        "id": association_id,
        "bk_inst_id": src,
        "bk_obj_id": src_obj,
        "bk_asst_inst_id": dest,
        "bk_asst_obj_id": dest_obj,
        "bk_supplier_account": "0",
        "bk_obj_asst_id": bk_obj_asst_id,
        "bk_asst_id": kind,
    }
