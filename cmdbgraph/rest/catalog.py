"""REST calls that look up models, model associations and instances."""

from __future__ import annotations

from starlette.responses import Response

from cmdbgraph.db.tables import is_int64
from cmdbgraph.rest import serialize
from cmdbgraph.rest.endpoint import Call
from cmdbgraph.rest.envelope import BadRequestBody, int_field, list_field, object_field
from cmdbgraph.rest.envelope import string_field as text
from cmdbgraph.services import catalog, instances
from cmdbgraph.services.errors import CmdbError, ErrorCode, parameter_invalid

SEARCH_INST_PAGE_LIMIT = 200


async def find_object_association(call: Call) -> Response:
    condition = object_field(call.body, "condition")
    found = await catalog.list_model_associations(
        call.db,
        catalog.ModelAssociationFilter(
            bk_obj_id=text(condition, "bk_obj_id") or None,
            bk_asst_obj_id=text(condition, "bk_asst_obj_id") or None,
            bk_asst_id=text(condition, "bk_asst_id") or None,
            bk_obj_asst_id=text(condition, "bk_obj_asst_id") or None,
        ),
    )
    return call.success([serialize.model_association(m) for m in found])


async def search_objects(call: Call) -> Response:
    body = call.body
    filters: dict[str, object] = {}
    for name in ("bk_obj_id", "bk_obj_name", "bk_classification_id"):
        if text(body, name):
            filters[name] = text(body, name)
    for name in ("ispre", "bk_ispaused"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, bool):
                raise BadRequestBody
            filters[name] = value
    found = await catalog.list_models(call.db, **filters)
    return call.success([serialize.model(m) for m in found])


def _condition_value(value: object) -> object:
    # Upstream's driver sends an integer beyond int64 as a double, which matches no id: so do
    # we, instead of failing to bind it.
    if type(value) is int and not is_int64(value):
        return float(value)
    return value


def _condition_fields(condition: dict) -> dict[str, object]:
    fields: dict[str, object] = {}
    for name, value in condition.items():
        if isinstance(value, dict):
            if set(value) == {"$eq"}:
                value = value["$eq"]
            elif set(value) == {"$in"} and isinstance(value["$in"], list):
                value = value["$in"]
            else:
                raise parameter_invalid(name)
        if isinstance(value, list):
            if not value or not all(isinstance(v, str | int | float | bool) for v in value):
                raise parameter_invalid(name)
            value = [_condition_value(v) for v in value]
        elif not isinstance(value, str | int | float | bool):
            raise parameter_invalid(name)
        fields[name] = _condition_value(value)
    return fields


async def search_inst_by_object(call: Call) -> Response:
    body = call.body
    bk_obj_id = call.request.path_params.get("bk_obj_id") or text(body, "bk_obj_id")
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    page = object_field(body, "page")
    start = int_field(page, "start")
    limit = int_field(page, "limit", default=SEARCH_INST_PAGE_LIMIT)
    if start < 0:
        raise parameter_invalid("page.start")
    if limit <= 0 or limit > SEARCH_INST_PAGE_LIMIT:
        raise CmdbError(ErrorCode.PAGE_LIMIT_EXCEEDED)
    fields = list_field(body, "fields")
    if any(not isinstance(f, str) for f in fields):
        raise BadRequestBody
    found = await instances.list_instances(
        call.db,
        instances.InstanceFilter(
            bk_obj_id=bk_obj_id, fields=_condition_fields(object_field(body, "condition"))
        ),
        offset=start,
        limit=limit,
        sort=text(page, "sort") or None,
    )
    return call.success(
        {
            "count": found.total_count,
            "info": [serialize.only(fields, serialize.instance(i)) for i in found.items],
        }
    )
