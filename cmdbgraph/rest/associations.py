"""REST calls on instance associations: batch create and its siblings."""

from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response

from cmdbgraph import metrics
from cmdbgraph.db.tables import is_int64
from cmdbgraph.rest import serialize
from cmdbgraph.rest.endpoint import Call
from cmdbgraph.rest.envelope import (
    BadRequestBody,
    int_field,
    list_field,
    object_field,
    string_field,
)
from cmdbgraph.services import associations
from cmdbgraph.services.errors import CmdbError, ErrorCode, parameter_invalid
from cmdbgraph.services.records import build_all

RELATED_PAGE_LIMIT = 500


def _policy(body: dict) -> associations.ErrorPolicy:
    value = string_field(body, "error_policy") or associations.ErrorPolicy.PARTIAL.value
    try:
        return associations.ErrorPolicy(value)
    except ValueError:
        raise parameter_invalid("error_policy") from None


def _bool_field(body: dict, name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequestBody
    return value


def parse_batch_request(
    body: dict, idempotency_key: str | None = None
) -> associations.BatchCreateRequest:
    details = []
    for item in list_field(body, "details"):
        if not isinstance(item, dict):
            raise BadRequestBody
        details.append(
            associations.Detail(int_field(item, "bk_inst_id"), int_field(item, "bk_asst_inst_id"))
        )
    return associations.BatchCreateRequest(
        bk_obj_id=string_field(body, "bk_obj_id"),
        bk_asst_obj_id=string_field(body, "bk_asst_obj_id"),
        bk_obj_asst_id=string_field(body, "bk_obj_asst_id"),
        details=details,
        dry_run=_bool_field(body, "dry_run"),
        policy=_policy(body),
        idempotency_key=string_field(body, "idempotency_key") or idempotency_key or None,
    )


async def batch_create_instance_association(call: Call) -> Response:
    request = parse_batch_request(call.body, call.request.headers.get("idempotency-key"))
    result = await associations.batch_create(
        call.db,
        call.caller,
        request,
        max_batch_size=call.settings.max_batch_size,
        idempotency_ttl=timedelta(seconds=call.settings.idempotency_ttl_seconds),
    )
    metrics.record_batch(result)
    return call.success(
        {
            "success_created": result.success_created(),
            "error_msg": result.error_msg(call.language),
        }
    )


async def add_instance_association(call: Call) -> Response:
    body = call.body
    created = await associations.create_one(
        call.db,
        call.caller,
        string_field(body, "bk_obj_asst_id"),
        int_field(body, "bk_inst_id"),
        int_field(body, "bk_asst_inst_id"),
    )
    return call.success({"id": created.id})


def _path_or_body_int(call: Call, name: str) -> int:
    raw = call.request.path_params.get(name)
    if raw is None:
        return int_field(call.body, name)
    try:
        value = int(raw)
    except ValueError:
        raise parameter_invalid(name) from None
    if not is_int64(value):
        raise parameter_invalid(name)
    return value


async def delete_instance_association(call: Call) -> Response:
    association_id = _path_or_body_int(call, "id")
    bk_obj_id = call.request.path_params.get("bk_obj_id") or string_field(call.body, "bk_obj_id")
    if association_id <= 0:
        raise parameter_invalid("id")
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    await associations.delete_associations(
        call.db, call.caller, [association_id], bk_obj_id=bk_obj_id
    )
    return call.success(None)


async def delete_related_inst_asso(call: Call) -> Response:
    ids = list_field(call.body, "id")
    if not all(is_int64(i) for i in ids):
        raise BadRequestBody
    bk_obj_id = string_field(call.body, "bk_obj_id")
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    deleted = await associations.delete_associations(call.db, call.caller, ids, bk_obj_id=bk_obj_id)
    return call.success(len(deleted))


async def find_instance_association(call: Call) -> Response:
    condition = object_field(call.body, "condition")
    bk_obj_id = string_field(call.body, "bk_obj_id")
    bk_obj_asst_id = string_field(condition, "bk_obj_asst_id")
    if not bk_obj_asst_id:
        raise parameter_invalid("bk_obj_asst_id")
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    page = await associations.list_associations(
        call.db,
        associations.AssociationFilter(
            bk_obj_asst_id=bk_obj_asst_id,
            bk_obj_id=bk_obj_id,
            bk_asst_id=string_field(condition, "bk_asst_id") or None,
            bk_asst_obj_id=string_field(condition, "bk_asst_obj_id") or None,
        ),
        limit=None,
    )
    # All of them, as upstream: built in turns, a large answer never holds the event loop.
    return call.success(await build_all(page.items, serialize.association))


async def search_related_inst_asso(call: Call) -> Response:
    condition = object_field(call.body, "condition")
    bk_inst_id = int_field(condition, "bk_inst_id")
    bk_obj_id = string_field(condition, "bk_obj_id")
    if bk_inst_id <= 0:
        raise parameter_invalid("bk_inst_id")
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    fields = list_field(call.body, "fields")
    if any(not isinstance(f, str) for f in fields):
        raise BadRequestBody
    page = object_field(call.body, "page")
    start = int_field(page, "start")
    limit = int_field(page, "limit", default=RELATED_PAGE_LIMIT)
    if start < 0:
        raise parameter_invalid("page.start")
    if limit <= 0 or limit > RELATED_PAGE_LIMIT:
        raise CmdbError(ErrorCode.PAGE_LIMIT_EXCEEDED)
    found = await associations.list_associations(
        call.db,
        associations.AssociationFilter(involving_inst_id=bk_inst_id, involving_obj_id=bk_obj_id),
        offset=start,
        limit=limit,
    )
    return call.success([serialize.only(fields, serialize.association(a)) for a in found.items])
