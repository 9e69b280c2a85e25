"""REST calls that look up models, model associations and instances, one declaration each."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from cmdbgraph.db.tables import is_int64
from cmdbgraph.rest import serialize
from cmdbgraph.rest.declarations import (
    GoObject,
    GoStr,
    GoStrList,
    Int64,
    LimitRef,
    NullIsEmpty,
    RequestModel,
    rest_call,
)
from cmdbgraph.rest.endpoint import Call
from cmdbgraph.services import catalog, instances, limits
from cmdbgraph.services.errors import parameter_invalid
from cmdbgraph.services.instances import SORTABLE_FIELDS

# --- find_object_association --------------------------------------------------------------


class ModelAssociationCondition(RequestModel):
    bk_obj_asst_id: GoStr = ""
    bk_obj_id: GoStr = ""
    bk_asst_obj_id: GoStr = ""
    bk_asst_id: GoStr = ""


class FindModelAssociationsBody(RequestModel):
    condition: Annotated[ModelAssociationCondition, NullIsEmpty] = ModelAssociationCondition()


@rest_call(
    "find_object_association",
    "POST",
    "/api/v3/find/objectassociation",
    data=list[serialize.ModelAssociation],
    summary="Find model associations",
    description="The model associations matching every given filter.",
    tag="models",
)
async def find_object_association(
    call: Call, body: FindModelAssociationsBody
) -> list[serialize.ModelAssociation]:
    condition = body.condition
    found = await catalog.list_model_associations(
        call.db,
        catalog.ModelAssociationFilter(
            bk_obj_id=condition.bk_obj_id or None,
            bk_asst_obj_id=condition.bk_asst_obj_id or None,
            bk_asst_id=condition.bk_asst_id or None,
            bk_obj_asst_id=condition.bk_obj_asst_id or None,
        ),
    )
    return [serialize.model_association(m) for m in found]


# --- search_objects -----------------------------------------------------------------------


class SearchObjectsBody(RequestModel):
    bk_obj_id: GoStr = ""
    bk_obj_name: GoStr = ""
    bk_classification_id: GoStr = ""
    ispre: bool | None = None
    bk_ispaused: bool | None = None


@rest_call(
    "search_objects",
    "POST",
    "/api/v3/find/object",
    data=list[serialize.Model],
    summary="Find models",
    description="The models matching every given filter.",
    tag="models",
)
async def search_objects(call: Call, body: SearchObjectsBody) -> list[serialize.Model]:
    filters: dict[str, object] = {
        name: value for name, value in body.model_dump().items() if value not in ("", None)
    }
    found = await catalog.list_models(call.db, equals=filters)
    return [serialize.model(m) for m in found]


# --- search_inst_by_object (alias search_inst) ----------------------------------------------


class InstancePage(RequestModel):
    start: Int64 = Field(0, description="Offset of the first item.")
    limit: Int64 | None = Field(
        None, description="Page size; 0, negative or over 200 answers 1199059."
    )
    sort: GoStr = Field(
        "",
        description=f"Comma-separated fields among {', '.join(SORTABLE_FIELDS)}, each "
        "ascending, or descending with a leading '-'; another field answers 1199011.",
        examples=["bk_inst_name", "-create_time,bk_inst_id"],
    )


class SearchInstancesBody(RequestModel):
    bk_obj_id: GoStr = Field("", examples=["bk_switch"])
    condition: GoObject = Field(
        {},
        description="Attribute → value it must equal (a value, a list of values, "
        "`{$eq: value}` or `{$in: [values]}`); an unusable value answers 1199011.",
    )
    fields: GoStrList = Field([], description="Only these fields of each item (all if empty).")
    page: Annotated[InstancePage, NullIsEmpty] = InstancePage()


class SearchInstancesData(TypedDict):
    count: Annotated[serialize.Count, Field(description="How many instances match.")]
    info: list[serialize.Instance]


_SCALAR = {"type": ["string", "integer", "number", "boolean"]}
_VALUES = {"type": "array", "minItems": 1, "items": _SCALAR}
_CONDITION_VALUE = {
    "anyOf": [
        _SCALAR,
        _VALUES,
        {
            "type": "object",
            "properties": {"$eq": _SCALAR},
            "required": ["$eq"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"$in": _VALUES},
            "required": ["$in"],
            "additionalProperties": False,
        },
    ]
}
_SORT_PART = rf"(?:-+\s*|\s*)(?:{'|'.join(SORTABLE_FIELDS)})\s*"


@rest_call(
    "search_inst_by_object",
    "POST",
    "/api/v3/find/instassociation/object/{bk_obj_id}",
    data=SearchInstancesData,
    summary="Find the instances of a model",
    description="A page of the instances of `bk_obj_id` matching `condition` (field → "
    "value, list of values, `{$eq: value}` or `{$in: [values]}`), with the total count.",
    tag="instances",
    aliases=("search_inst",),
    required=("bk_obj_id",),
    documented={
        "bk_obj_id": {"minLength": 1},
        "condition": {"additionalProperties": _CONDITION_VALUE},
        "page.start": {"minimum": 0, "default": 0},
        "page.limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": LimitRef("search_inst_page_size"),
            "default": LimitRef("search_inst_page_size"),
        },
        "page.sort": {"pattern": rf"^(?:{_SORT_PART}(?:,{_SORT_PART})*)?$"},
    },
)
async def search_inst_by_object(call: Call, body: SearchInstancesBody) -> SearchInstancesData:
    bk_obj_id = call.request.path_params.get("bk_obj_id") or body.bk_obj_id
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    size = call.limits.search_inst_page_size
    start, limit = limits.page_bounds(
        body.page.start, body.page.limit, default=size, maximum=size, start_name="page.start"
    )
    found = await instances.list_instances(
        call.db,
        instances.InstanceFilter(bk_obj_id=bk_obj_id, fields=_condition_fields(body.condition)),
        offset=start,
        limit=limit,
        sort=body.page.sort or None,
    )
    return {
        "count": found.total_count,
        "info": [serialize.only(body.fields, serialize.instance(i)) for i in found.items],
    }


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
