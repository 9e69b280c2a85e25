"""REST calls that look up models, model associations and instances, one declaration each."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from typing_extensions import TypedDict

from cmdbgraph.rest import serialize
from cmdbgraph.rest.declarations import (
    GoObject,
    GoStr,
    GoStrList,
    Int64,
    LimitRef,
    NullIsEmpty,
    NullIsEmptyList,
    RequestModel,
    decoder_words,
    rest_call,
)
from cmdbgraph.rest.endpoint import Call
from cmdbgraph.services import catalog, conditions, instances, kinds, limits
from cmdbgraph.services.errors import (
    EN,
    CmdbError,
    ErrorCode,
    parameter_invalid,
    render,
    verbatim,
)
from cmdbgraph.services.instances import SORTABLE_FIELDS

# --- find_object_association --------------------------------------------------------------


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
        tree = conditions.parse(
            conditions.caller_owned(condition), catalog.MODEL_ASSOCIATION_CONDITION_FIELDS
        )
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
    "run answers upstream's 1199998 or 1102020, the reason in the X-Cmdbgraph-Hint header. "
    "Built-in models (`host`, `bk_switch`, ...) carry upstream's names for them in the "
    "caller's language.",
    tag="models",
)
async def search_objects(call: Call, body: SearchObjectsBody) -> list[serialize.Model]:
    try:
        tree = conditions.parse(conditions.caller_owned(call.raw), catalog.MODEL_CONDITION_FIELDS)
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
    # Built-in models under upstream's names for them in the caller's language.
    return [serialize.model(catalog.model_in_language(m, call.language)) for m in found]


# --- search_inst_by_object and search_inst --------------------------------------------------


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


def _moment(value: object) -> datetime | None:
    """Upstream's cctime.Time: ``"2006-01-02 15:04:05"`` (here UTC) or RFC 3339 with a zone;
    anything else is a body upstream cannot decode."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            if len(value) == len("2006-01-02 15:04:05") and value[10] == " ":
                return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is not None and "T" in value:
                return moment
        except ValueError:
            pass
    raise ValueError("not a time")


Moment = Annotated[datetime | None, BeforeValidator(_moment)]


class TimeRuleBody(RequestModel):
    field: GoStr = Field("", examples=["bk_created_at"])
    start: Moment = Field(None, examples=["2026-11-01 00:00:00"])
    end: Moment = Field(None, examples=["2026-11-30 23:59:59"])


class TimeConditionBody(RequestModel):
    oper: GoStr = Field("", description='Only "and" (1199006 otherwise).')
    rules: Annotated[list[TimeRuleBody], NullIsEmptyList] = []


def _time(body: TimeConditionBody | None) -> conditions.Node | None:
    if body is None:
        return None
    return conditions.time_condition(
        body.oper, [conditions.TimeRule(r.field, r.start, r.end) for r in body.rules]
    )


def _generic_failure(error: conditions.ConditionError) -> CmdbError:
    """What upstream's instance searches answer a condition MongoDB refuses: its generic
    1199998 text; the reason goes in the hint."""
    return CmdbError(ErrorCode.UNKNOWN, hint=error.text)


def _refuse_inner_model(path: dict, raw: dict) -> None:
    bk_obj_id = path.get("bk_obj_id") or raw.get("bk_obj_id")
    if isinstance(bk_obj_id, str):
        instances.refuse_inner_model(bk_obj_id)


class InstancesData(TypedDict):
    count: Annotated[serialize.Count, Field(description="How many instances match.")]
    info: list[serialize.Instance]


_SORT_PART = rf"(?:-+\s*|\s*)(?:{'|'.join(SORTABLE_FIELDS)})\s*"
_PAGE_DOCUMENTED = {
    "page.start": {"minimum": 0, "default": 0},
    "page.limit": {
        "type": "integer",
        "minimum": 1,
        "maximum": LimitRef("search_inst_page_size"),
        "default": LimitRef("search_inst_page_size"),
    },
    "page.sort": {"pattern": rf"^(?:{_SORT_PART}(?:,{_SORT_PART})*)?$"},
}


def _page(call: Call, page: InstancePage) -> tuple[int, int]:
    size = call.limits.search_inst_page_size
    return limits.page_bounds(
        page.start, page.limit, default=size, maximum=size, start_name="page.start"
    )


class SearchByObjectBody(RequestModel):
    bk_obj_id: GoStr = Field(
        "", description="The model (ESB; in the path elsewhere).", examples=["bk_switch"]
    )
    bk_supplier_account: GoStr = Field("", description="Ignored, as upstream does.")
    condition: GoObject = Field(
        {},
        description="Upstream's condition (MongoDB's operators: see the README's *Conditions*) "
        "on the instances' fields and attributes.",
        examples=[{"bk_inst_name": {"$regex": "^sw-"}, "bk_inst_id": {"$gt": 10}}],
    )
    time_condition: TimeConditionBody | None = Field(
        None,
        description="Upstream's time condition: `oper` `and`, `rules` of `{field, start, end}` "
        "on `create_time`/`bk_created_at` or `last_time`/`bk_updated_at`.",
    )
    fields: GoStrList = Field([], description="Only these fields of each item (all if empty).")
    page: Annotated[InstancePage, NullIsEmpty] = InstancePage()


@rest_call(
    "search_inst_by_object",
    "POST",
    "/api/v3/find/instance/object/{bk_obj_id}",
    data=InstancesData,
    summary="Find the instances of a model",
    description="A page of the instances of `bk_obj_id` matching `condition` and "
    "`time_condition`, with the total count; each row one map, keys sorted. Upstream's "
    "built-in models (`host`, `biz`, `set`, `module`, ...) answer 1199084, as upstream's "
    "common instance calls do. A condition that cannot run answers 1199998 (the reason in "
    "the X-Cmdbgraph-Hint header).",
    tag="instances",
    required=("bk_obj_id",),
    documented={"bk_obj_id": {"minLength": 1}, **_PAGE_DOCUMENTED},
    more_paths=(
        ("/api/v3/inst/search/{bk_supplier_account}/{bk_obj_id}", "native_owner"),
        ("/api/v3/inst/search/owner/{bk_supplier_account}/object/{bk_obj_id}", "native_gateway"),
    ),
    precheck=_refuse_inner_model,
)
async def search_inst_by_object(call: Call, body: SearchByObjectBody) -> InstancesData:
    bk_obj_id = call.request.path_params.get("bk_obj_id") or body.bk_obj_id
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    try:
        condition = conditions.parse(
            conditions.caller_owned(body.condition), instances.CONDITION_FIELDS
        )
    except conditions.ConditionError as error:
        raise _generic_failure(error) from None
    start, limit = _page(call, body.page)
    found = await instances.list_instances(
        call.db,
        instances.InstanceFilter(
            bk_obj_id=bk_obj_id, condition=conditions.both(condition, _time(body.time_condition))
        ),
        offset=start,
        limit=limit,
        sort=body.page.sort or None,
    )
    return {
        "count": found.total_count,
        "info": [serialize.only(body.fields, serialize.instance(i)) for i in found.items],
    }


class ConditionItemBody(RequestModel):
    field: GoStr = Field("", examples=["bk_inst_name"])
    operator: GoStr = Field("", examples=["$regex"])
    value: Any = Field(None, examples=["sw"])


class SearchInstBody(RequestModel):
    bk_obj_id: GoStr = Field(
        "", description="The model (ESB; in the path elsewhere).", examples=["bk_switch"]
    )
    condition: Annotated[dict[str, list[ConditionItemBody]], NullIsEmpty] = Field(
        {},
        description="Model → `[{field, operator, value}]`. On the model itself: `$eq`, `$ne`, "
        "`$regex` (a plain substring: upstream escapes it), `$lt`/`$lte`/`$gt`/`$gte`, ... On "
        "another model: its matching instances, and the instances of this model whose "
        "associations point at them.",
        examples=[
            {
                "bk_switch": [{"field": "bk_inst_name", "operator": "$regex", "value": "sw"}],
                "host": [{"field": "bk_inst_name", "operator": "$eq", "value": "10.0.0.1"}],
            }
        ],
    )
    fields: Annotated[dict[str, list[str]], NullIsEmpty] = Field(
        {}, description="Model → the fields to return; only this model's entry is used."
    )
    time_condition: TimeConditionBody | None = None
    page: Annotated[InstancePage, NullIsEmpty] = InstancePage()


class SearchInstData(TypedDict):
    count: Annotated[serialize.Count, Field(description="How many instances match.")]
    info: Annotated[
        list[serialize.Instance] | None,
        Field(description="null when conditions name only other models and none leads here."),
    ]


@rest_call(
    "search_inst",
    "POST",
    "/api/v3/find/instassociation/object/{bk_obj_id}",
    data=SearchInstData,
    summary="Find instances through their associated instances",
    description="Upstream's search_inst: the instances of `bk_obj_id` matching "
    "`condition[bk_obj_id]`; for each other model of `condition` with matching instances, "
    "only the sources of associations towards them (the union over those models; a model "
    "without a match restricts nothing). Built-in models answer 1199084.",
    tag="instances",
    required=("bk_obj_id",),
    documented={"bk_obj_id": {"minLength": 1}, **_PAGE_DOCUMENTED},
    precheck=_refuse_inner_model,
)
async def search_inst(call: Call, body: SearchInstBody) -> SearchInstData:
    bk_obj_id = call.request.path_params.get("bk_obj_id") or body.bk_obj_id
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    start, limit = _page(call, body.page)
    items = {
        model: [instances.ConditionItem(i.field, i.operator, i.value) for i in found]
        for model, found in body.condition.items()
    }
    try:
        found = await instances.find_through_associations(
            call.db,
            bk_obj_id,
            items,
            time=_time(body.time_condition),
            offset=start,
            limit=limit,
            sort=body.page.sort or None,
        )
    except conditions.ConditionError as error:
        raise _generic_failure(error) from None
    if found is None:
        return {"count": 0, "info": None}
    wanted = body.fields.get(bk_obj_id, [])
    return {
        "count": found.total_count,
        "info": [serialize.only(wanted, serialize.instance(i)) for i in found.items],
    }


# --- search_association_type --------------------------------------------------------------


class KindPage(RequestModel):
    start: Int64 = Field(0, description="Offset of the first item.")
    limit: Int64 = Field(0, description="Page size; 0 or less: every one (as upstream).")
    sort: GoStr = Field(
        "", description="Upstream's sort: `bk_asst_id`, `-id`, `bk_asst_name:-1,id`, ..."
    )


class SearchAssociationTypeBody(RequestModel):
    condition: GoObject = Field(
        {},
        description="Upstream's condition (MongoDB's operators: see the README's *Conditions*) "
        "on the kinds' fields (`bk_asst_id`, `bk_asst_name`, `ispre`, `direction`, `id`, ...).",
        examples=[{"bk_asst_id": {"$in": ["belong", "connect"]}}],
    )
    page: Annotated[KindPage, NullIsEmpty] = KindPage()


class AssociationKindsData(TypedDict):
    count: Annotated[serialize.Count, Field(description="How many kinds match.")]
    info: list[serialize.AssociationKind]


@rest_call(
    "search_association_type",
    "POST",
    "/api/v3/find/associationtype",
    data=AssociationKindsData,
    summary="Find association kinds",
    description="The association kinds matching `condition`, counted, a page of them in "
    "`page.sort`'s order, then by id (all when `page.limit` is 0); preset kinds carry "
    "upstream's words in the caller's language. A body of the wrong types answers 1199006, "
    "a condition that cannot run 1199998 with MongoDB's words.",
    tag="models",
    bad_body=decoder_words,
)
async def search_association_type(
    call: Call, body: SearchAssociationTypeBody
) -> AssociationKindsData:
    try:
        condition = conditions.parse(body.condition, kinds.KIND_CONDITION_FIELDS)
    except conditions.ConditionError as error:
        raise verbatim(ErrorCode.UNKNOWN, error.text) from None
    if body.page.start < 0:
        raise parameter_invalid("page.start")
    found = await kinds.search_association_kinds(
        call.db,
        condition,
        offset=body.page.start,
        limit=body.page.limit if body.page.limit > 0 else None,
        sort=limits.sort_keys(body.page.sort),
        language=call.language,
    )
    return {
        "count": found.total_count,
        "info": [serialize.association_kind(k) for k in found.items],
    }
