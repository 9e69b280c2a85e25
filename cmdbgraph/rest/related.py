"""REST calls that read across associations: a model's associations with the instances at
their ends, an instance's association topology, the instances associated with one instance.
One declaration each."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from cmdbgraph.rest import serialize
from cmdbgraph.rest.declarations import (
    GoBool,
    GoStr,
    GoStrList,
    Int64,
    NullIsEmpty,
    RequestModel,
    go_parse_int,
    rest_call,
)
from cmdbgraph.rest.endpoint import Call
from cmdbgraph.services import associations, conditions, limits, querybuilder, related
from cmdbgraph.services.errors import (
    CmdbError,
    ErrorCode,
    parameter_invalid,
    parameter_unassigned,
    verbatim,
)

NAME = {"minLength": 1}


def _negative_skip(start: int) -> str:
    """MongoDB's words for a negative ``page.start``, which upstream hands to it as is."""
    return f"(BadValue) Skip value must be non-negative, but received: {start}"


# --- find_instassociation_with_inst -------------------------------------------------------

DETAIL_PAGE_SIZE = 200  # upstream's InstAndAssocRequest.Validate


class WithInstCondition(RequestModel):
    asst_filter: Any = Field(
        None,
        description="Upstream's querybuilder filter on the associations (`{condition: AND|OR, "
        "rules: [{field, operator, value}]}`, operators `equal not_equal in not_in less ... "
        "begins_with contains ends_with (and not_) is_empty is_null exist (and not_)`); "
        "required (1199011). A faulty rule answers 1199011 naming it "
        "(`condition.asst_filter.rules[0].value`); upstream sets no limit on its size, this "
        f"service {querybuilder.OWN_MAX_DEPTH} levels, {querybuilder.OWN_MAX_RULES} rules "
        f"and {querybuilder.OWN_MAX_VALUES:,} `in` values (1199035).",
        examples=[
            {
                "condition": "AND",
                "rules": [
                    {"field": "bk_obj_id", "operator": "equal", "value": "bk_switch"},
                    {"field": "bk_asst_obj_id", "operator": "equal", "value": "host"},
                ],
            }
        ],
    )
    asst_fields: GoStrList = Field(
        [], description="Only these fields of each association, in upstream's order (all if empty)."
    )
    src_fields: GoStrList = Field(
        [],
        description="Only these fields of each source instance (all if empty).",
        examples=[["bk_inst_id", "bk_inst_name"]],
    )
    dst_fields: GoStrList = Field(
        [],
        description="Only these fields of each target instance (all if empty).",
        examples=[["bk_host_innerip"]],
    )
    src_detail: GoBool = Field(False, description="Answer the source instances in `src`.")
    dst_detail: GoBool = Field(False, description="Answer the target instances in `dst`.")


class WithInstPage(RequestModel):
    start: Int64 = Field(0, description="Offset of the first association.")
    limit: Int64 = Field(
        0,
        description=f"Page size, 1 to {DETAIL_PAGE_SIZE}: 0 answers 1199010, more 1199059; "
        "negative reads as MongoDB reads it (at most that many without the sign).",
    )
    sort: GoStr = Field(
        "",
        description="Fields of the associations, comma-separated, each `-` for descending "
        "(`a,-b` or `a:1,b:-1`); another field sorts nothing.",
        examples=["-bk_asst_inst_id"],
    )
    enable_count: GoBool = Field(False, description="Ignored, as upstream does.")


class WithInstBody(RequestModel):
    bk_obj_id: GoStr = Field(
        "", description="The model (in the path on native routes).", examples=["bk_switch"]
    )
    condition: Annotated[WithInstCondition, NullIsEmpty] = WithInstCondition()
    page: Annotated[WithInstPage, NullIsEmpty] = WithInstPage()


class WithInstData(TypedDict):
    association: list[serialize.InstAssociationFields]
    src: Annotated[
        list[serialize.Instance] | None,
        Field(
            description="The source instances (each once, model by model, in id order); null "
            "unless `src_detail`, or when there is no association. Built-in models' rows also "
            "carry upstream's id and name fields (a host's `bk_host_id`, `bk_host_innerip`)."
        ),
    ]
    dst: Annotated[
        list[serialize.Instance] | None,
        Field(description="The target instances, as `src`; null unless `dst_detail`."),
    ]


def _asst_filter(value: object) -> tuple[conditions.Node, CmdbError | None]:
    """The filter's tree, checked in upstream's order; a rule MongoDB would refuse (a regular
    expression it cannot read) comes back as the error upstream answers later, when it
    reads."""
    try:
        decoded = querybuilder.decode(value)
    except querybuilder.QueryFilterMalformed:
        raise CmdbError(ErrorCode.JSON_INVALID) from None
    if decoded is None:
        raise parameter_invalid("condition.asst_filter")
    if "condition" not in decoded:
        # Upstream wants combined rules at the top; the key of that fault is empty.
        raise parameter_invalid("condition.asst_filter.")
    try:
        tree = querybuilder.read(
            decoded,
            associations.CONDITION_FIELDS,
            name="condition.asst_filter",
            option=querybuilder.ELEMENT_TYPES_ONLY,
        )
    except CmdbError as error:
        if error.code is not ErrorCode.PARAMETER_CHECK_FAILED:
            raise
        if error.texts is None:
            raise parameter_invalid(*error.args_) from None
        return conditions.EVERYTHING, verbatim(ErrorCode.UNKNOWN, error.texts[1])
    return tree, None


@rest_call(
    "find_instassociation_with_inst",
    "POST",
    "/api/v3/find/instassociation/object/{bk_obj_id}/inst/detail",
    data=WithInstData,
    summary="Find a model's instance associations, with their instances",
    description="A page of the associations whose source or target model is `bk_obj_id` "
    "(upstream keeps each under both) matching the querybuilder filter "
    "`condition.asst_filter`, with the instances at their sources (`src_detail`) and targets "
    "(`dst_detail`). Upstream's checks in its order: the body (1199000), the filter (1199011), "
    "the page (1199059, 1199010), the model (1199998 `get model by objID failed, val: [x]`), "
    "then what MongoDB refuses (1199998 with its words: a negative `page.start`, a regular "
    "expression it cannot read).",
    required=("bk_obj_id", "condition", "page"),
    documented={
        "bk_obj_id": NAME,
        "condition": {"required": ["asst_filter"]},
        "condition.asst_filter": {"type": "object", "required": ["condition", "rules"]},
        "page": {"required": ["limit"]},
        "page.start": {"minimum": 0},
        "page.limit": {
            "minimum": -DETAIL_PAGE_SIZE,
            "maximum": DETAIL_PAGE_SIZE,
            "not": {"const": 0},
        },
    },
)
async def find_instassociation_with_inst(call: Call, body: WithInstBody) -> WithInstData:
    bk_obj_id = call.request.path_params.get("bk_obj_id") or body.bk_obj_id
    condition, page = body.condition, body.page
    tree, refused_when_read = _asst_filter(condition.asst_filter)
    # Upstream checks only the positive side; MongoDB reads a negative limit without its sign.
    if abs(page.limit) > DETAIL_PAGE_SIZE:
        raise CmdbError(ErrorCode.PAGE_LIMIT_EXCEEDED)
    if page.limit == 0:
        raise parameter_unassigned("page.limit")
    await related.require_model(call.db, bk_obj_id)
    if page.start < 0:
        raise verbatim(ErrorCode.UNKNOWN, _negative_skip(page.start))
    if refused_when_read is not None:
        raise refused_when_read
    found = await related.associations_with_instances(
        call.db,
        bk_obj_id,
        tree,
        offset=page.start,
        limit=abs(page.limit),
        sort=limits.sort_keys(page.sort),
        sources=condition.src_detail,
        targets=condition.dst_detail,
    )
    return {
        "association": [
            serialize.only(condition.asst_fields, serialize.association(a))
            for a in found.associations
        ],
        "src": _rows(found.sources, condition.src_fields),
        "dst": _rows(found.targets, condition.dst_fields),
    }


def _rows(found: list | None, fields: list[str]) -> list[serialize.Instance] | None:
    if found is None:
        return None
    return [serialize.only(fields, serialize.instance_as_upstream(i)) for i in found]


# --- search_inst_association_topo ---------------------------------------------------------


class TopologyBody(RequestModel):
    bk_obj_id: GoStr = Field(
        "", description="The model (in the path on native routes).", examples=["bk_switch"]
    )
    bk_inst_id: Int64 = Field(
        0,
        description="The instance (in the path on native routes, where anything but an int64 "
        "answers 1199998 with Go's words, as upstream).",
        examples=[13],
    )


@rest_call(
    "search_inst_association_topo",
    "POST",
    "/api/v3/find/insttopo/object/{bk_obj_id}/inst/{bk_inst_id}",
    data=list[serialize.InstTopo],
    summary="Find an instance's association topology",
    description="The targets of the associations whose source is the instance `bk_inst_id` of "
    "model `bk_obj_id`, grouped by their model (in model id order), each group's instances "
    "in association id order (upstream answers only this direction). Upstream's checks in "
    "its order: the path's id (1199998 with Go's words), the model (1199011 `bk_obj_id`), "
    "the instance (1199011 naming upstream's id field of the model: `bk_inst_id`, "
    "`bk_host_id`, ...). On the native route the body's fields are not used.",
    required=("bk_obj_id", "bk_inst_id"),
    documented={"bk_obj_id": NAME, "bk_inst_id": {"minimum": 1}},
)
async def search_inst_association_topo(call: Call, body: TopologyBody) -> list[serialize.InstTopo]:
    path = call.request.path_params
    if "bk_inst_id" in path:
        bk_inst_id = go_parse_int(path["bk_inst_id"], ErrorCode.UNKNOWN)
        bk_obj_id = path["bk_obj_id"]
    else:
        bk_obj_id, bk_inst_id = body.bk_obj_id, body.bk_inst_id
    groups = await related.child_topology(call.db, bk_obj_id, bk_inst_id, language=call.language)
    return [serialize.topology(group) for group in groups]


# --- search_inst_asst_object_inst_base_info -----------------------------------------------

BASE_INFO_DEFAULT_PAGE_SIZE = 20  # upstream's BKDefaultLimit
BASE_INFO_PAGE_SIZE = 1000  # upstream's BKMaxPageSize
NO_LIMIT = 999_999_999  # upstream's BKNoLimit: every one


class BaseInfoCondition(RequestModel):
    bk_obj_id: GoStr = Field("", description="The instance's model (1199010 if empty).")
    bk_inst_id: Int64 = Field(0, description="The instance (1199010 if 0).")
    is_target_object: GoBool = Field(
        False,
        description="false: the instance is the source of the associations; true: their target.",
    )
    association_obj_id: GoStr = Field(
        "", description="The model at the other end (1199010 if empty).", examples=["host"]
    )


class BaseInfoPage(RequestModel):
    start: Int64 = Field(0, description="Offset of the first association.")
    limit: Int64 = Field(
        0,
        description=f"Associations per page: 0 means {BASE_INFO_DEFAULT_PAGE_SIZE}, at most "
        f"{BASE_INFO_PAGE_SIZE} (1199059), {NO_LIMIT} every one; negative reads as MongoDB "
        "reads it (at most that many without the sign).",
    )
    sort: GoStr = Field("", description="As `page.sort` of the other association searches.")


class BaseInfoBody(RequestModel):
    condition: Annotated[BaseInfoCondition, NullIsEmpty] = BaseInfoCondition()
    page: Annotated[BaseInfoPage, NullIsEmpty] = BaseInfoPage()


class BaseInfoData(TypedDict):
    count: Annotated[
        serialize.Count,
        Field(
            description="How many associations match (not instances); 0 when the page holds "
            "none, as upstream answers."
        ),
    ]
    info: Annotated[
        list[serialize.InstBaseInfo] | None,
        Field(
            description="The instances at the other end of the page's associations, each "
            "once, in id order; null when the page holds none."
        ),
    ]


@rest_call(
    "search_inst_asst_object_inst_base_info",
    "POST",
    "/api/v3/findmany/inst/association/association_object/inst_base_info",
    data=BaseInfoData,
    summary="Find the instances of a model associated with one instance",
    description="The id and name of the instances of `condition.association_obj_id` "
    "associated with the instance `condition.bk_inst_id` of `condition.bk_obj_id` (as its "
    "targets, or its sources with `is_target_object`), through a page of those associations, "
    "and how many associations match. Upstream's checks in its order: the body (1199000), "
    "`bk_obj_id`, `bk_inst_id`, `association_obj_id` (1199010), the page (1199059), then "
    "what MongoDB refuses (1199002 with its words: a negative `page.start`). Models that do "
    "not exist have no associations.",
    required=("condition",),
    documented={
        "condition": {"required": ["bk_obj_id", "bk_inst_id", "association_obj_id"]},
        "condition.bk_obj_id": NAME,
        "condition.bk_inst_id": {"not": {"const": 0}},
        "condition.association_obj_id": NAME,
        "page.start": {"minimum": 0},
        "page.limit": {
            "anyOf": [
                {"minimum": -BASE_INFO_PAGE_SIZE, "maximum": BASE_INFO_PAGE_SIZE},
                {"const": NO_LIMIT},
            ]
        },
    },
)
async def search_inst_asst_object_inst_base_info(call: Call, body: BaseInfoBody) -> BaseInfoData:
    condition, page = body.condition, body.page
    if not condition.bk_obj_id:
        raise parameter_unassigned("bk_obj_id")
    if condition.bk_inst_id == 0:
        raise parameter_unassigned("bk_inst_id")
    if not condition.association_obj_id:
        raise parameter_unassigned("association_obj_id")
    size = page.limit or BASE_INFO_DEFAULT_PAGE_SIZE
    # Upstream checks only the positive side; MongoDB reads a negative one without its sign.
    if abs(size) > BASE_INFO_PAGE_SIZE and size != NO_LIMIT:
        raise CmdbError(ErrorCode.PAGE_LIMIT_EXCEEDED)
    if page.start < 0:
        # Upstream wraps what its storage layer answers in 1199002.
        raise verbatim(ErrorCode.HTTP_REQUEST_FAILED, _negative_skip(page.start))
    found = await related.associated_instances(
        call.db,
        condition.bk_obj_id,
        condition.bk_inst_id,
        condition.association_obj_id,
        as_target=condition.is_target_object,
        offset=page.start,
        limit=None if size == NO_LIMIT else abs(size),
        sort=limits.sort_keys(page.sort),
    )
    return {
        "count": found.count,
        "info": None
        if found.instances is None
        else [serialize.base_info(i) for i in found.instances],
    }
