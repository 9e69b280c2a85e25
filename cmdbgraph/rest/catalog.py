"""REST calls that look up models, model associations and instances, one declaration each."""

from __future__ import annotations

from typing import Annotated, Any

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
from cmdbgraph.services import catalog, conditions, instances, limits
from cmdbgraph.services.errors import EN, CmdbError, ErrorCode, parameter_invalid, render, verbatim
from cmdbgraph.services.instances import SORTABLE_FIELDS

# --- find_object_association --------------------------------------------------------------


def _owner_free(condition: dict) -> dict:
    """Upstream overwrites the condition's ``bk_supplier_account`` with the caller's own."""
    return {k: v for k, v in condition.items() if k != "bk_supplier_account"}


def _mongodb_failure(error: conditions.ConditionError) -> CmdbError:
    return verbatim(ErrorCode.BODY_PARSE_FAILED if error.parse else ErrorCode.UNKNOWN, error.text)


class FindModelAssociationsBody(RequestModel):
    condition: Any = Field(
        None,
        description="Upstream's condition (MongoDB's operators: see the README's "
        "*Conditions*) on the model associations' fields (`bk_obj_id`, `bk_asst_obj_id`, "
        "`bk_asst_id`, `bk_obj_asst_id`, `mapping`, `on_delete`, `ispre`, `id`, ...); it must "
        "hold at least one field.",
        examples=[
            {"bk_asst_id": "belong", "$or": [{"bk_obj_id": "host"}, {"bk_asst_obj_id": "host"}]}
        ],
    )
    bk_obj_id: Any = Field(
        None,
        description="Upstream's older form, without `condition`: upstream itself cannot run it "
        "(1199998) and neither does this service.",
    )


# Upstream answers an empty condition with its template, unfilled.
_EMPTY_CONDITION = CmdbError(
    ErrorCode.PARAMETER_INVALID,
    texts=("'%s' 参数无效或不存在", "'%s' the parameter is invalid or does not exist"),
)


@rest_call(
    "find_object_association",
    "POST",
    "/api/v3/find/objectassociation",
    data=list[serialize.ModelAssociation],
    summary="Find model associations",
    description="The model associations matching `condition`, in id order. An empty or missing "
    "condition answers 1199011 (upstream's text, its `%s` unfilled); one that is not an object "
    "1199011 with upstream's words; one that cannot run 1199030 or 1199998 with MongoDB's words.",
    tag="models",
    required=("condition",),
    documented={"condition": {"type": "object", "minProperties": 1}},
)
async def find_object_association(
    call: Call, body: FindModelAssociationsBody
) -> list[serialize.ModelAssociation]:
    if "condition" not in call.raw:
        # Upstream's older form reads {"bk_obj_id": {"$in": <a string>}}, which MongoDB refuses.
        if not isinstance(body.bk_obj_id, str) or not body.bk_obj_id:
            raise _EMPTY_CONDITION
        raise verbatim(ErrorCode.UNKNOWN, "(BadValue) $in needs an array")
    condition = body.condition if body.condition is not None else {}
    if not isinstance(condition, dict):
        raise verbatim(
            ErrorCode.PARAMETER_INVALID,
            "the value of the key(condition) is not a map[string]interface{} type",
        )
    if not condition:
        raise _EMPTY_CONDITION
    try:
        tree = conditions.parse(_owner_free(condition), catalog.MODEL_ASSOCIATION_CONDITION_FIELDS)
    except conditions.ConditionError as error:
        raise _mongodb_failure(error) from None
    found = await catalog.list_model_associations(
        call.db, catalog.ModelAssociationFilter(condition=tree)
    )
    return [serialize.model_association(m) for m in found]


# --- search_objects -----------------------------------------------------------------------


_FIELD = 'A value it must equal, or MongoDB\'s operators on it (`{"$in": [...]}`, ...).'


class SearchObjectsBody(RequestModel):
    """The whole body is the condition (the handler reads it whole): upstream documents
    these fields; any other field of a model, and `$and`, `$or`, `$nor`, apply as well."""

    bk_obj_id: Any = Field(None, description=_FIELD, examples=["bk_switch"])
    bk_obj_name: Any = Field(None, description=_FIELD)
    bk_classification_id: Any = Field(None, description=_FIELD, examples=["bk_network"])
    creator: Any = Field(None, description=_FIELD)
    modifier: Any = Field(None, description=_FIELD)
    obj_sort_number: Any = Field(None, description=_FIELD)


@rest_call(
    "search_objects",
    "POST",
    "/api/v3/find/object",
    data=list[serialize.Model],
    summary="Find models",
    description="The models matching the body, which is upstream's condition (MongoDB's "
    "operators: see the README's *Conditions*) on the models' fields (`bk_obj_id`, "
    "`bk_obj_name`, `bk_classification_id`, `creator`, `modifier`, `obj_sort_number`, "
    "`ispre`, `bk_ispaused`, `id`, ...); an empty body, every model. A condition that cannot "
    "run answers upstream's 1199998 or 1102020, the reason in the X-Cmdbgraph-Hint header.",
    tag="models",
)
async def search_objects(call: Call, body: SearchObjectsBody) -> list[serialize.Model]:
    try:
        tree = conditions.parse(_owner_free(call.raw), catalog.MODEL_CONDITION_FIELDS)
    except conditions.ConditionError as error:
        if error.parse:
            raise CmdbError(ErrorCode.UNKNOWN, hint=error.text) from None
        # Upstream fills a template without a placeholder: Go's %!(EXTRA ...) is its text.
        raise CmdbError(
            ErrorCode.OBJECT_DB_FAILED,
            texts=tuple(  # type: ignore[arg-type]
                f"{text}%!(EXTRA string={error.text})"
                for text in (
                    render(ErrorCode.OBJECT_DB_FAILED),
                    render(ErrorCode.OBJECT_DB_FAILED, language=EN),
                )
            ),
            hint=error.text,
        ) from None
    found = await catalog.list_models(call.db, condition=tree)
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
