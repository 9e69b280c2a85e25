"""REST calls on instance associations: batch create and its siblings, one declaration each."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from cmdbgraph.db.tables import is_int64
from cmdbgraph.rest import serialize
from cmdbgraph.rest.declarations import (
    GoBool,
    GoObject,
    GoStr,
    GoStrList,
    Int64,
    Int64List,
    LimitRef,
    NullIsEmpty,
    NullIsEmptyList,
    RequestModel,
    decoder_words,
    decoder_words_formatted,
    rest_call,
)
from cmdbgraph.rest.endpoint import Call
from cmdbgraph.services import associations, conditions, limits, querybuilder
from cmdbgraph.services.errors import (
    CmdbError,
    ErrorCode,
    parameter_check_failed,
    parameter_invalid,
    parameter_unassigned,
    verbatim,
)
from cmdbgraph.services.records import build_all

NAME = {"minLength": 1}
ID = {"minimum": 1}
INDEX_KEYS = {"propertyNames": {"pattern": "^(0|[1-9][0-9]*)$"}}


# --- batch_create_instance_association ----------------------------------------------------


class Detail(RequestModel):
    bk_inst_id: Int64 = Field(0, description="The source instance.")
    bk_asst_inst_id: Int64 = Field(0, description="The target instance.")


class BatchCreateBody(RequestModel):
    bk_obj_id: GoStr = Field("", description="The source model.", examples=["bk_switch"])
    bk_asst_obj_id: GoStr = Field("", description="The target model.", examples=["host"])
    bk_obj_asst_id: GoStr = Field(
        "",
        description="The model association; must join exactly these two models.",
        examples=["bk_switch_belong_host"],
    )
    details: Annotated[list[Detail], NullIsEmptyList] = Field(
        [],
        description="1 to `CMDBGRAPH_MAX_BATCH_SIZE` items (200 at most): empty answers "
        "1199038, more answers 1199035.",
    )
    dry_run: GoBool = Field(
        False, description="Decide every item and report as usual, but write nothing."
    )
    error_policy: GoStr = Field(
        "",
        description="partial (upstream's): write the items that pass; all_or_nothing: write "
        "nothing unless every item passes (the reply still reports each index). Another "
        "value answers 1199011.",
    )
    idempotency_key: GoStr = Field(
        "",
        description="A retry with the same key, by the same caller, with the same body, "
        "returns the first reply. Wins over the Idempotency-Key header.",
    )


class BatchCreateData(TypedDict):
    success_created: Annotated[
        dict[str, serialize.Id],
        Field(
            description="Index of the item (as a string) → id of the new association.",
            json_schema_extra=INDEX_KEYS,
        ),
    ]
    error_msg: Annotated[
        dict[str, str],
        Field(
            description="Index of the item (as a string) → why it failed.",
            json_schema_extra=INDEX_KEYS,
        ),
    ]


def _policy(value: str) -> associations.ErrorPolicy:
    try:
        return associations.ErrorPolicy(value or associations.ErrorPolicy.PARTIAL.value)
    except ValueError:
        raise parameter_invalid("error_policy") from None


@rest_call(
    "batch_create_instance_association",
    "POST",
    "/api/v3/createmany/instassociation",
    data=BatchCreateData,
    summary="Create instance associations in a batch",
    description=(
        "Creates one association per item of `details`, under the model association "
        "`bk_obj_asst_id`. Request-level checks come first, in upstream's order (1199000, "
        "1199011, 1199038, 1199035, 1199006, 1101046, 1101082, 9900403); then every item "
        "is decided in index order and `data` maps each index to the new id "
        "(`success_created`) or to the reason it failed (`error_msg`). A reply whose "
        "items all failed is still a success (`result: true`). Beyond upstream: "
        "`dry_run`, `error_policy` and idempotency keys."
    ),
    idempotency_header=True,
    required=("bk_obj_id", "bk_asst_obj_id", "bk_obj_asst_id", "details"),
    documented={
        "bk_obj_id": NAME,
        "bk_asst_obj_id": NAME,
        "bk_obj_asst_id": NAME,
        "details": {"minItems": 1, "maxItems": LimitRef("max_batch_size")},
        "error_policy": {
            "enum": [policy.value for policy in associations.ErrorPolicy],
            "default": associations.ErrorPolicy.PARTIAL.value,
        },
        "idempotency_key": {"minLength": 1, "maxLength": LimitRef("max_idempotency_key")},
    },
)
async def batch_create_instance_association(call: Call, body: BatchCreateBody) -> BatchCreateData:
    request = associations.BatchCreateRequest(
        bk_obj_id=body.bk_obj_id,
        bk_asst_obj_id=body.bk_asst_obj_id,
        bk_obj_asst_id=body.bk_obj_asst_id,
        details=[associations.Detail(d.bk_inst_id, d.bk_asst_inst_id) for d in body.details],
        dry_run=body.dry_run,
        policy=_policy(body.error_policy),
        # An empty key, in the body or the header, means no key.
        idempotency_key=body.idempotency_key or call.request.headers.get("idempotency-key") or None,
    )
    result = await associations.batch_create(
        call.db,
        call.caller,
        request,
        limits=call.limits,
        idempotency_ttl=timedelta(seconds=call.settings.idempotency_ttl_seconds),
    )
    return {
        "success_created": result.success_created(),
        "error_msg": result.error_msg(call.language),
    }


# --- add_instance_association -------------------------------------------------------------


class AddBody(RequestModel):
    bk_obj_asst_id: GoStr = Field("", examples=["bk_switch_belong_host"])
    bk_inst_id: Int64 = Field(0, description="The source instance.")
    bk_asst_inst_id: Int64 = Field(0, description="The target instance.")


class AddData(TypedDict):
    id: serialize.Id


@rest_call(
    "add_instance_association",
    "POST",
    "/api/v3/create/instassociation",
    data=AddData,
    summary="Create one instance association",
    description="Upstream's checks in upstream's order: the model association (1101046), "
    "its mapping (1101052, 1101061), the pair (1199014 for one that exists), the instances "
    "(1101073, 1101074); a body of the wrong types answers 1199006.",
    required=("bk_obj_asst_id", "bk_inst_id", "bk_asst_inst_id"),
    documented={"bk_obj_asst_id": NAME},
    bad_body=decoder_words,
)
async def add_instance_association(call: Call, body: AddBody) -> AddData:
    created = await associations.create_one(
        call.db, call.caller, body.bk_obj_asst_id, body.bk_inst_id, body.bk_asst_inst_id
    )
    return {"id": created.id}


# --- delete_instance_association ----------------------------------------------------------


class DeleteOneBody(RequestModel):
    id: Int64 = Field(0, description="The association; 0 or negative answers 1199011.")
    bk_obj_id: GoStr = Field("", description="The source or target model.")


def _path_or_body_int(call: Call, name: str, from_body: int, *, upstream_name: str) -> int:
    """``name`` from the path (upstream's ParseInt: 1199009 naming ``upstream_name`` unless
    it is an int64), else from the body."""
    raw = call.request.path_params.get(name)
    if raw is None:
        return from_body
    try:
        value = int(raw) if raw.lstrip("-").isdigit() else None
    except ValueError:
        value = None
    if value is None or not is_int64(value):
        raise CmdbError(ErrorCode.PARAMETER_NOT_INTEGER, (upstream_name,))
    return value


@rest_call(
    "delete_instance_association",
    "DELETE",
    "/api/v3/delete/instassociation/{bk_obj_id}/{id}",
    data=None,
    summary="Delete one instance association",
    description="Deletes the association `id` if its source or target model is "
    "`bk_obj_id`; deleting one that does not exist succeeds.",
    required=("id", "bk_obj_id"),
    documented={"id": ID, "bk_obj_id": NAME},
)
async def delete_instance_association(call: Call, body: DeleteOneBody) -> None:
    association_id = _path_or_body_int(call, "id", body.id, upstream_name="association_id")
    bk_obj_id = call.request.path_params.get("bk_obj_id") or body.bk_obj_id
    if association_id <= 0:
        raise parameter_invalid("id")
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    await associations.delete_associations(
        call.db, call.caller, [association_id], bk_obj_id=bk_obj_id, limits=call.limits
    )
    return None


# --- delete_related_inst_asso -------------------------------------------------------------


class DeleteManyBody(RequestModel):
    id: Int64List = Field(
        [],
        description=f"1 to {limits.MAX_DELETE_IDS} ids: empty answers 1199003, more answers "
        "1199059.",
    )
    bk_obj_id: GoStr = Field("", description="The source or target model (1199010 if empty).")


@rest_call(
    "delete_related_inst_asso",
    "DELETE",
    "/api/v3/delete/instassociation/batch",
    data=Annotated[serialize.Count, Field(description="How many associations were deleted.")],
    summary="Delete instance associations by id",
    description="Deletes, in one transaction, the associations among `id` whose source or "
    "target model is `bk_obj_id`; `data` is how many were deleted. Upstream's checks in its "
    "order: the body (1199006), no ids (1199003), more than 500 (1199059), no `bk_obj_id` "
    "(1199010).",
    required=("id", "bk_obj_id"),
    bad_body=decoder_words,
    documented={
        "id": {"minItems": 1, "maxItems": LimitRef("max_delete_ids")},
        "bk_obj_id": NAME,
    },
)
async def delete_related_inst_asso(call: Call, body: DeleteManyBody) -> int:
    if not body.id:
        raise CmdbError(ErrorCode.INPUT_INVALID)
    if len(body.id) > call.limits.max_delete_ids:
        raise CmdbError(ErrorCode.PAGE_LIMIT_EXCEEDED)
    if not body.bk_obj_id:
        raise parameter_unassigned("bk_obj_id")
    deleted = await associations.delete_associations(
        call.db, call.caller, body.id, bk_obj_id=body.bk_obj_id, limits=call.limits
    )
    return len(deleted)


# --- find_instance_association ------------------------------------------------------------


class FindBody(RequestModel):
    condition: GoObject = Field(
        {},
        description="Upstream's condition (MongoDB's operators: see the README's *Conditions*) "
        "on the associations' fields (`id`, `bk_obj_asst_id`, `bk_asst_id`, `bk_inst_id`, "
        '`bk_asst_inst_id`, `bk_obj_id`, `bk_asst_obj_id`, ...). A field given as `""` '
        "filters nothing, as upstream's documented example expects.",
        examples=[{"bk_obj_asst_id": "bk_switch_belong_host", "bk_inst_id": {"$in": [1, 2]}}],
    )
    bk_obj_id: GoStr = Field(
        "", description="The model: its associations as source or as target (1199010 if empty)."
    )


def _condition(condition: dict, *, failure: ErrorCode = ErrorCode.UNKNOWN) -> conditions.Node:
    """``condition`` parsed; what cannot run answers ``failure`` with MongoDB's words for it
    (upstream passes them on)."""
    try:
        return conditions.parse(conditions.caller_owned(condition), associations.CONDITION_FIELDS)
    except conditions.ConditionError as error:
        raise verbatim(failure, error.text) from None


@rest_call(
    "find_instance_association",
    "POST",
    "/api/v3/find/instassociation",
    data=list[serialize.InstAssociation],
    summary="Find the instance associations of a model",
    description="Every association whose source or target model is `bk_obj_id` (upstream "
    "keeps each association under both its models) and that matches `condition`, in id "
    "order. A condition that cannot run answers 1199998 with MongoDB's words (`unknown "
    'operator: $foo`, `operator "$where" is forbidden`); a body of the wrong types '
    "1199006.",
    required=("bk_obj_id",),
    documented={"bk_obj_id": NAME},
    bad_body=decoder_words,
)
async def find_instance_association(call: Call, body: FindBody) -> list[serialize.InstAssociation]:
    if not body.bk_obj_id:
        raise parameter_unassigned("bk_obj_id")
    # The documented example sends "" for the filters it does not use.
    condition = _condition({k: v for k, v in body.condition.items() if v != ""})
    found = await associations.find_associations(
        call.db, associations.AssociationFilter(either_obj_id=body.bk_obj_id, condition=condition)
    )
    # All of them, as upstream: built in turns, a large answer never holds the event loop.
    return await build_all(found, serialize.association)


# --- search_related_inst_asso -------------------------------------------------------------


class RelatedCondition(RequestModel):
    bk_inst_id: Int64 = 0
    bk_obj_id: GoStr = ""


class Page(RequestModel):
    start: Int64 = Field(0, description="Offset of the first item.")
    limit: Int64 | None = Field(
        None,
        description="Page size; absent or 0: every one (as upstream); negative or over 500 "
        "answers 1199059.",
    )


class RelatedBody(RequestModel):
    condition: Annotated[RelatedCondition, NullIsEmpty] = RelatedCondition()
    fields: GoStrList = Field(
        [],
        description="The fields of each item to return (1199010 if none): they come in "
        "upstream's order, fields it does not have are left out.",
        examples=[["id", "bk_inst_id", "bk_asst_inst_id", "bk_obj_asst_id"]],
    )
    page: Annotated[Page, NullIsEmpty] = Page()


PAGE_START = {"minimum": 0, "default": 0}


@rest_call(
    "search_related_inst_asso",
    "POST",
    "/api/v3/find/instassociation/related",
    data=list[serialize.InstAssociationFields],
    summary="Find the associations of one instance, in both directions",
    description="The associations whose source or target is the instance "
    "`condition.bk_inst_id` of model `condition.bk_obj_id`, ordered by id, limited to "
    "`fields`. Upstream's checks in its order: the body (1199006), the instance and model "
    "(1199010), `fields` (1199010), the page (1199059).",
    required=("condition", "fields"),
    documented={
        "condition": {"required": ["bk_inst_id", "bk_obj_id"]},
        "condition.bk_inst_id": {"not": {"const": 0}},
        "condition.bk_obj_id": NAME,
        "fields": {"minItems": 1},
        "page.start": PAGE_START,
        "page.limit": {
            "type": "integer",
            "minimum": 0,
            "maximum": LimitRef("related_page_size"),
            "default": 0,
        },
    },
    bad_body=decoder_words_formatted,
)
async def search_related_inst_asso(
    call: Call, body: RelatedBody
) -> list[serialize.InstAssociationFields]:
    condition = body.condition
    if condition.bk_inst_id == 0 or not condition.bk_obj_id:
        raise parameter_unassigned("'bk_inst_id' & 'bk_obj_id'")
    if not body.fields:
        raise parameter_unassigned("fields")
    page = body.page
    if page.limit is not None and (page.limit < 0 or page.limit > call.limits.related_page_size):
        raise CmdbError(ErrorCode.PAGE_LIMIT_EXCEEDED)
    if page.start < 0:
        raise parameter_invalid("page.start")
    found = await associations.find_associations(
        call.db,
        associations.AssociationFilter(
            involving_inst_id=condition.bk_inst_id, involving_obj_id=condition.bk_obj_id
        ),
        offset=page.start,
        # Upstream: no limit unless one is given; built in turns (see build_all).
        limit=page.limit or None,
    )
    return await build_all(found, lambda a: serialize.only(body.fields, serialize.association(a)))


# --- search_instance_associations and count_instance_associations ---------------------------


class InstanceAssociationsPage(RequestModel):
    start: Int64 = Field(0, description="Offset of the first item.")
    limit: Int64 = Field(0, description="1 to 500 (1199006 `'page.limit'` otherwise).")
    sort: GoStr = Field(
        "",
        description="Fields of the associations, comma-separated, each `-` for descending "
        "(`a,-b` or `a:1,b:-1`); another field sorts nothing.",
        examples=["-id"],
    )
    enable_count: GoBool = False


_QUERY_FILTER = Field(
    None,
    description="Upstream's querybuilder filter: `{condition: AND|OR, rules: [...]}`, atoms "
    "`{field, operator, value}` with operators `equal not_equal in not_in less less_or_equal "
    "greater greater_or_equal datetime_less ... begins_with contains ends_with (and not_) "
    "is_empty is_null exist (and not_)`; at most 3 levels, 500 values in one `in`, 20 rules "
    "in one OR. A faulty rule answers 1199006 naming it (`conditions.rules[0].value`).",
    examples=[
        {
            "condition": "AND",
            "rules": [
                {"field": "bk_obj_asst_id", "operator": "equal", "value": "bk_switch_connect_host"},
                {"field": "bk_inst_id", "operator": "in", "value": [11, 13]},
            ],
        }
    ],
)


class SearchInstanceAssociationsBody(RequestModel):
    bk_obj_id: GoStr = Field("", description="The model (in the path on native routes).")
    conditions: Any = _QUERY_FILTER
    fields: GoStrList = Field(
        [], description="Only these fields of each item, in upstream's order (all if empty)."
    )
    page: Annotated[InstanceAssociationsPage, NullIsEmpty] = InstanceAssociationsPage()


class CountInstanceAssociationsBody(RequestModel):
    bk_obj_id: GoStr = Field("", description="The model (in the path on native routes).")
    conditions: Any = _QUERY_FILTER


class InfoData(TypedDict):
    info: list[serialize.InstAssociationFields]


class CountData(TypedDict):
    count: serialize.Count


def _query_filter(value: object) -> conditions.Node:
    try:
        return querybuilder.read(value, associations.CONDITION_FIELDS)
    except querybuilder.QueryFilterMalformed:
        raise CmdbError(ErrorCode.JSON_INVALID) from None


@rest_call(
    "search_instance_associations",
    "POST",
    "/api/v3/search/instance_associations/object/{bk_obj_id}",
    data=InfoData,
    summary="Search the instance associations of a model",
    description="The associations whose source or target model is `bk_obj_id` (upstream keeps "
    "each under both) matching the querybuilder filter `conditions`, a page of them "
    "(`page.limit` 1 to 500), only `fields` when given.",
    required=("bk_obj_id", "page"),
    documented={
        "bk_obj_id": NAME,
        "page.limit": {"minimum": 1, "maximum": 500},
    },
)
async def search_instance_associations(
    call: Call, body: SearchInstanceAssociationsBody
) -> InfoData:
    bk_obj_id = call.request.path_params.get("bk_obj_id") or body.bk_obj_id
    if not bk_obj_id:
        raise parameter_check_failed("bk_obj_id")
    if body.page.limit <= 0 or body.page.limit > 500:
        raise parameter_check_failed("page.limit")
    condition = _query_filter(body.conditions)
    found = await associations.find_associations(
        call.db,
        associations.AssociationFilter(either_obj_id=bk_obj_id, condition=condition),
        offset=max(body.page.start, 0),
        limit=body.page.limit,
        sort=limits.sort_keys(body.page.sort),
    )
    return {"info": [serialize.only(body.fields, serialize.association(a)) for a in found]}


@rest_call(
    "count_instance_associations",
    "POST",
    "/api/v3/count/instance_associations/object/{bk_obj_id}",
    data=CountData,
    summary="Count the instance associations of a model",
    description="How many associations whose source model is `bk_obj_id` (upstream counts "
    "the source side only here) match the querybuilder filter `conditions`.",
    required=("bk_obj_id",),
    documented={"bk_obj_id": NAME},
)
async def count_instance_associations(call: Call, body: CountInstanceAssociationsBody) -> CountData:
    bk_obj_id = call.request.path_params.get("bk_obj_id") or body.bk_obj_id
    if not bk_obj_id:
        raise parameter_check_failed("bk_obj_id")
    condition = _query_filter(body.conditions)
    total = await associations.count_associations(
        call.db, associations.AssociationFilter(bk_obj_id=bk_obj_id, condition=condition)
    )
    return {"count": total}
