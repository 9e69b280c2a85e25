"""REST calls that change the catalog: model associations and association kinds, one
declaration each. Upstream has them on its native routes only (its UI's calls); the ESB paths
take the path's id from the body."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from typing_extensions import TypedDict

from cmdbgraph.db.tables import INT64_MAX, INT64_MIN, is_int64
from cmdbgraph.rest import serialize
from cmdbgraph.rest.declarations import (
    GoStr,
    Int64,
    RequestModel,
    decoder_words,
    go_parse_int,
    rest_call,
)
from cmdbgraph.rest.endpoint import Call
from cmdbgraph.services import catalog, kinds
from cmdbgraph.services.errors import (
    CmdbError,
    ErrorCode,
    parameter_check_failed,
    parameter_invalid,
    under_code,
)

TAG = "models"


def _path_id(call: Call, from_body: int) -> int | None:
    """The path's ``{id}`` as Go reads it (None when it is not one), else the body's."""
    raw = call.request.path_params.get("id")
    if raw is None:
        return from_body
    try:
        return go_parse_int(raw, ErrorCode.PARAMETER_CHECK_FAILED)
    except CmdbError:
        return None


# --- model associations -----------------------------------------------------------------


class CreateObjectAssociationBody(RequestModel):
    """Upstream's metadata.Association."""

    id: Int64 = Field(0, description="Ignored: the service numbers the association.")
    bk_supplier_account: GoStr = Field("", description="Echoed; the caller's account is stored.")
    bk_obj_asst_id: GoStr = Field(
        "",
        description="The association's id, by convention `{bk_obj_id}_{bk_asst_id}_"
        "{bk_asst_obj_id}` (this service requires it to start with `bk_obj_id` and end with "
        "`bk_asst_obj_id`, which the batch create relies on).",
        examples=["bk_switch_connect_host"],
    )
    bk_obj_asst_name: GoStr = Field("", description="Its name, up to 128 characters.")
    bk_obj_id: GoStr = Field("", description="The source model.", examples=["bk_switch"])
    bk_asst_obj_id: GoStr = Field("", description="The target model.", examples=["host"])
    bk_asst_id: GoStr = Field("", description="The association kind.", examples=["connect"])
    mapping: GoStr = Field("", description="`1:1`, `1:n` or `n:n`.", examples=["1:n"])
    on_delete: GoStr = Field("", description="`none` (the default), `delete_src` or `delete_dest`.")
    ispre: bool | None = Field(
        None, description="Echoed; `true` answers 1199011 (presets come with the service)."
    )


class CreatedObjectAssociation(TypedDict):
    """Upstream's reply: the request echoed, with the new id and `on_delete` defaulted."""

    id: serialize.Id
    bk_supplier_account: str
    bk_obj_asst_id: str
    bk_obj_asst_name: str
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_asst_id: str
    mapping: str
    on_delete: str
    ispre: bool | None


# What upstream answers a body it cannot decode: 1199011, its template unfilled.
def _unfilled_invalid() -> CmdbError:
    return under_code(ErrorCode.PARAMETER_INVALID, ErrorCode.PARAMETER_INVALID)


@rest_call(
    "create_object_association",
    "POST",
    "/api/v3/create/objectassociation",
    data=CreatedObjectAssociation,
    summary="Create a model association",
    description="Associates two models with a kind. Upstream's checks in its order: a "
    "`bk_mainline` kind (1101082), a model or the kind not named (1101045), the two models "
    "already associated with that kind (1101038), a model that does not exist (1199011), no "
    "`bk_obj_asst_id` (1199010) or one taken (1199014); then this service's: the kind, "
    "`mapping` and `on_delete` must exist (1199011), the id must follow the convention "
    "(1199006). The reply echoes the request with the new `id`. Audited; needs the grant on "
    "every model (upstream's `edit_sys_model` on both models).",
    tag=TAG,
    aliases=("add_object_association",),
    bad_body=_unfilled_invalid,
    required=("bk_obj_asst_id", "bk_obj_id", "bk_asst_obj_id", "bk_asst_id", "mapping"),
    documented={
        **{name: {"minLength": 1} for name in ("bk_obj_asst_id", "bk_obj_id", "bk_asst_obj_id")},
        "bk_asst_id": {"minLength": 1},
        "mapping": {"enum": ["1:1", "1:n", "n:n"]},
        "on_delete": {"enum": ["", "none", "delete_src", "delete_dest"]},
        "bk_obj_asst_name": {"maxLength": 128},
    },
)
async def create_object_association(
    call: Call, body: CreateObjectAssociationBody
) -> CreatedObjectAssociation:
    if body.ispre:
        raise parameter_invalid("ispre")
    created = await catalog.create_model_association(
        call.db,
        call.caller,
        catalog.NewModelAssociation(
            bk_obj_id=body.bk_obj_id,
            bk_asst_obj_id=body.bk_asst_obj_id,
            bk_asst_id=body.bk_asst_id,
            mapping=body.mapping,
            on_delete=body.on_delete,
            bk_obj_asst_id=body.bk_obj_asst_id,
            bk_obj_asst_name=body.bk_obj_asst_name,
        ),
    )
    return {
        "id": created.id,
        "bk_supplier_account": body.bk_supplier_account,
        "bk_obj_asst_id": body.bk_obj_asst_id,
        "bk_obj_asst_name": body.bk_obj_asst_name,
        "bk_obj_id": body.bk_obj_id,
        "bk_asst_obj_id": body.bk_asst_obj_id,
        "bk_asst_id": body.bk_asst_id,
        "mapping": body.mapping,
        "on_delete": created.on_delete,
        "ispre": body.ispre,
    }


# The fields upstream refuses to update, in the order it checks them (``id`` only when it
# is not 0).
_FORBIDDEN = ("bk_supplier_account", "bk_obj_asst_id", "bk_obj_id", "bk_asst_obj_id", "mapping")


def _zero(value: object) -> bool:
    """Upstream's GetInt64ByInterface(value) == 0."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        try:
            return int(value) == 0
        except ValueError:
            return False
    return False


def _refuse_bad_path_id(path: dict, raw: dict) -> None:
    """update_object_association reads its path's id before the body: 1199011, unfilled."""
    if "id" in path:
        try:
            go_parse_int(path["id"], ErrorCode.PARAMETER_CHECK_FAILED)
        except CmdbError:
            raise _unfilled_invalid() from None


class UpdateObjectAssociationBody(RequestModel):
    """Upstream reads the body as a map: the name is the one field it writes."""

    id: Any = Field(None, description="The association, on the ESB paths (the path's otherwise).")
    bk_obj_asst_name: Any = Field(
        None, description="The new name (up to 128 characters); absent, nothing changes."
    )


@rest_call(
    "update_object_association",
    "PUT",
    "/api/v3/update/objectassociation/{id}",
    data=None,
    summary="Rename a model association",
    description="Sets `bk_obj_asst_name`, the one field upstream writes (others, such as "
    "`bk_asst_id` and `on_delete`, are ignored as upstream ignores them). A path id that is "
    "not an integer answers 1199011; `bk_supplier_account`, `bk_obj_asst_id`, `bk_obj_id`, "
    "`bk_asst_obj_id`, `mapping`, `ispre` or a non-zero `id` in the body 1101047; an "
    "association that does not exist 1101046, a preset 1101054. Audited.",
    tag=TAG,
    precheck=_refuse_bad_path_id,
    documented={
        "id": {"type": "integer", "format": "int64", "minimum": INT64_MIN, "maximum": INT64_MAX},
        "bk_obj_asst_name": {"type": "string", "maxLength": 128},
    },
)
async def update_object_association(call: Call, body: UpdateObjectAssociationBody) -> None:
    on_path = "id" in call.request.path_params
    if on_path:
        association_id = _path_id(call, 0) or 0
        if "id" in call.raw and not _zero(call.raw["id"]):
            raise CmdbError(ErrorCode.FORBIDDEN_FIELDS_UPDATED)
    else:
        # On the ESB paths the id is a field of the body, an int64 as every id is.
        if not isinstance(body.id, int) or isinstance(body.id, bool) or not is_int64(body.id):
            raise CmdbError(ErrorCode.JSON_INVALID)
        association_id = body.id
    if any(name in call.raw for name in (*_FORBIDDEN, "ispre")):
        raise CmdbError(ErrorCode.FORBIDDEN_FIELDS_UPDATED)
    name = body.bk_obj_asst_name
    if "bk_obj_asst_name" in call.raw and not isinstance(name, str):
        raise parameter_check_failed("bk_obj_asst_name")
    await catalog.update_model_association(call.db, call.caller, association_id, name)
    return None


class DeleteByIdBody(RequestModel):
    id: Int64 = Field(0, description="The id, on the ESB paths (the path's otherwise).")


@rest_call(
    "delete_object_association",
    "DELETE",
    "/api/v3/delete/objectassociation/{id}",
    data=None,
    summary="Delete a model association",
    description="Deletes the model association `id`; one that does not exist is no error. "
    "An id that is not a positive integer answers 1101041; a `bk_mainline` association "
    "1101082, a preset 1101055, one with instance associations 1101043. Audited.",
    tag=TAG,
    required=("id",),
    documented={"id": {"minimum": 1}},
)
async def delete_object_association(call: Call, body: DeleteByIdBody) -> None:
    association_id = _path_id(call, body.id)
    if association_id is None:
        raise CmdbError(ErrorCode.MODEL_ASSOCIATION_ID_INVALID)
    await catalog.delete_model_association(call.db, call.caller, association_id)
    return None


# --- association kinds ------------------------------------------------------------------

# Upstream's columns hold 128 characters of each text (this service refuses more: 1199073).
_TEXTS = {name: {"maxLength": kinds.MAX_TEXT} for name in ("bk_asst_name", "src_des", "dest_des")}
_DIRECTION = Field(
    "",
    description='`none` (also for `""`), `src_to_dest` or `bidirectional`.',
    examples=["src_to_dest"],
)


class CreateAssociationTypeBody(RequestModel):
    """Upstream's metadata.AssociationKind."""

    id: Int64 = Field(0, description="Ignored: the service numbers the kind.")
    bk_asst_id: GoStr = Field(
        "",
        description="The kind's id: a letter, then letters, digits or underscores, up to 128.",
        examples=["backup"],
    )
    bk_asst_name: GoStr = Field("", description="Its name.", examples=["备份"])
    bk_supplier_account: GoStr = Field("", description="Ignored: the caller's is stored.")
    src_des: GoStr = Field("", description="The source's words.", examples=["备份到"])
    dest_des: GoStr = Field("", description="The target's words.", examples=["备份自"])
    direction: GoStr = _DIRECTION
    ispre: bool | None = Field(None, description="`true` answers 1199011.")


class CreatedId(TypedDict):
    id: serialize.Id


@rest_call(
    "create_association_type",
    "POST",
    "/api/v3/create/associationtype",
    data=CreatedId,
    summary="Create an association kind",
    description="Creates a kind. Upstream's checks in its order: the id taken (1199014), longer "
    "than 128 characters (1199073), not a letter then letters, digits or underscores "
    "(1199011 naming it); then this service's: texts of up to 128 characters (1199073), a "
    "direction it draws (1199011). A body of the wrong types answers 1199006. Audited; needs "
    "the grant on every model (upstream's `create_association_type`).",
    tag=TAG,
    bad_body=decoder_words,
    required=("bk_asst_id",),
    documented={
        "bk_asst_id": {"pattern": "^[a-zA-Z][a-zA-Z0-9_]*$", "maxLength": kinds.MAX_KIND_ID},
        "direction": {"enum": ["", *kinds.DIRECTIONS]},
        **_TEXTS,
    },
)
async def create_association_type(call: Call, body: CreateAssociationTypeBody) -> CreatedId:
    if body.ispre:
        raise parameter_invalid("ispre")
    created = await kinds.create_kind(
        call.db,
        call.caller,
        kinds.NewKind(
            bk_asst_id=body.bk_asst_id,
            bk_asst_name=body.bk_asst_name,
            src_des=body.src_des,
            dest_des=body.dest_des,
            direction=body.direction,
        ),
    )
    return {"id": created.id}


class UpdateAssociationTypeBody(RequestModel):
    """Upstream's metadata.UpdateAssociationTypeRequest: all four are set, absent ones to
    ``""``."""

    id: Int64 = Field(0, description="The kind, on the ESB paths (the path's otherwise).")
    bk_asst_name: GoStr = Field("", description="Its name.")
    src_des: GoStr = Field("", description="The source's words.")
    dest_des: GoStr = Field("", description="The target's words.")
    direction: GoStr = _DIRECTION


def _kind_id(call: Call, from_body: int) -> int:
    raw = call.request.path_params.get("id")
    return from_body if raw is None else go_parse_int(raw, ErrorCode.PARAMETER_CHECK_FAILED)


@rest_call(
    "update_association_type",
    "PUT",
    "/api/v3/update/associationtype/{id}",
    data=None,
    summary="Update an association kind",
    description='Sets the kind\'s name, words and direction, all four (absent ones to `""`, '
    "as upstream); a kind that does not exist is no error. Presets may be edited, as upstream "
    "allows, but reads show upstream's words for them. A body of the wrong types, or a path "
    "id that is not an integer, answers 1199006. Audited; needs the grant on every model "
    "(upstream's `edit_association_type`).",
    tag=TAG,
    bad_body=decoder_words,
    documented={"direction": {"enum": ["", *kinds.DIRECTIONS]}, **_TEXTS},
)
async def update_association_type(call: Call, body: UpdateAssociationTypeBody) -> None:
    kind_id = _kind_id(call, body.id)
    await kinds.update_kind(
        call.db,
        call.caller,
        kind_id,
        kinds.KindTexts(
            bk_asst_name=body.bk_asst_name,
            src_des=body.src_des,
            dest_des=body.dest_des,
            direction=body.direction,
        ),
    )
    return None


@rest_call(
    "delete_association_type",
    "DELETE",
    "/api/v3/delete/associationtype/{id}",
    data=None,
    summary="Delete an association kind",
    description="Deletes the kind `id`; one that does not exist is no error. A path id that "
    "is not an integer answers 1199006, a preset kind 1101051, a kind a model association "
    "uses 1101060. Audited; needs the grant on every model (upstream's "
    "`delete_association_type`).",
    tag=TAG,
    required=("id",),
)
async def delete_association_type(call: Call, body: DeleteByIdBody) -> None:
    await kinds.delete_kind(call.db, call.caller, _kind_id(call, body.id))
    return None
