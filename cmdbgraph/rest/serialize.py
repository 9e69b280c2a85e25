"""Records as upstream's JSON objects: the types of the calls' ``data`` (typed dicts, which
also describe them in the OpenAPI document) and the functions that build them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from cmdbgraph.db.tables import INT64_MAX, INT64_MIN
from cmdbgraph.services import records

Id = Annotated[int, Field(ge=1, le=INT64_MAX, json_schema_extra={"format": "int64"})]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, json_schema_extra={"format": "int64"})]
Count = Annotated[int, Field(ge=0, le=INT64_MAX, json_schema_extra={"format": "int64"})]
Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Mapping = Annotated[str, Field(json_schema_extra={"enum": ["1:1", "1:n", "n:n"]})]
OnDelete = Annotated[str, Field(json_schema_extra={"enum": ["none", "delete_src", "delete_dest"]})]


@with_config(ConfigDict(extra="forbid"))
class InstAssociation(TypedDict):
    """A stored instance association."""

    id: Id
    bk_obj_asst_id: Annotated[str, Field(examples=["bk_switch_belong_host"])]
    bk_asst_id: Annotated[str, Field(examples=["belong"])]
    bk_obj_id: Annotated[str, Field(examples=["bk_switch"])]
    bk_inst_id: Id
    bk_asst_obj_id: Annotated[str, Field(examples=["host"])]
    bk_asst_inst_id: Id
    bk_supplier_account: str
    bk_biz_id: Int64


InstAssociationFields = with_config(ConfigDict(extra="forbid"))(
    TypedDict(  # type: ignore[operator]
        "InstAssociationFields", dict(InstAssociation.__annotations__), total=False
    )
)
InstAssociationFields.__doc__ = "A stored instance association, limited to the fields asked for."


@with_config(ConfigDict(extra="forbid"))
class ModelAssociation(TypedDict):
    """A model association (`bk_obj_asst_id` by convention
    `{bk_obj_id}_{bk_asst_id}_{bk_asst_obj_id}`)."""

    id: Id
    bk_obj_asst_id: str
    bk_obj_asst_name: str
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_asst_id: str
    mapping: Mapping
    on_delete: OnDelete
    ispre: bool
    bk_supplier_account: str


@with_config(ConfigDict(extra="forbid"))
class Model(TypedDict):
    """A model (`bk_obj_id` such as host or bk_switch)."""

    bk_obj_id: str
    bk_obj_name: str
    bk_classification_id: str
    bk_obj_icon: str
    ispre: bool
    bk_ispaused: bool
    bk_supplier_account: str
    creator: str
    modifier: str
    create_time: Time
    last_time: Time


@with_config(ConfigDict(extra="allow"))
class Instance(TypedDict, total=False):
    """An instance: its attributes and the fields below, limited to the fields asked for when
    there are some."""

    bk_inst_id: Id
    bk_obj_id: str
    bk_inst_name: str
    bk_supplier_account: str
    create_time: Time
    last_time: Time


def association(a: records.InstAssociation) -> InstAssociation:
    return {
        "id": a.id,
        "bk_obj_asst_id": a.bk_obj_asst_id,
        "bk_asst_id": a.bk_asst_id,
        "bk_obj_id": a.bk_obj_id,
        "bk_inst_id": a.bk_inst_id,
        "bk_asst_obj_id": a.bk_asst_obj_id,
        "bk_asst_inst_id": a.bk_asst_inst_id,
        "bk_supplier_account": a.bk_supplier_account,
        "bk_biz_id": a.bk_biz_id,
    }


def model_association(m: records.ModelAssociation) -> ModelAssociation:
    return {
        "id": m.id,
        "bk_obj_asst_id": m.bk_obj_asst_id,
        "bk_obj_asst_name": m.bk_obj_asst_name,
        "bk_obj_id": m.bk_obj_id,
        "bk_asst_obj_id": m.bk_asst_obj_id,
        "bk_asst_id": m.bk_asst_id,
        "mapping": m.mapping,
        "on_delete": m.on_delete,
        "ispre": m.ispre,
        "bk_supplier_account": m.bk_supplier_account,
    }


def model(m: records.Model) -> Model:
    return {
        "bk_obj_id": m.bk_obj_id,
        "bk_obj_name": m.bk_obj_name,
        "bk_classification_id": m.bk_classification_id,
        "bk_obj_icon": m.bk_obj_icon,
        "ispre": m.ispre,
        "bk_ispaused": m.bk_ispaused,
        "bk_supplier_account": m.bk_supplier_account,
        "creator": m.creator,
        "modifier": m.modifier,
        "create_time": m.create_time.isoformat(),
        "last_time": m.last_time.isoformat(),
    }


def instance(i: records.Instance) -> Instance:
    built: dict[str, Any] = {
        **i.attributes,
        "bk_inst_id": i.bk_inst_id,
        "bk_obj_id": i.bk_obj_id,
        "bk_inst_name": i.bk_inst_name,
        "bk_supplier_account": i.bk_supplier_account,
        "create_time": i.create_time.isoformat(),
        "last_time": i.last_time.isoformat(),
    }
    return built  # type: ignore[return-value]  # the attributes are the extra keys


def only(fields: list[str], item: Any) -> Any:
    """Upstream's ``fields``: keep only these keys (all of them when empty)."""
    return {name: item[name] for name in fields if name in item} if fields else item
