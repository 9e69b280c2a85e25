"""Records as upstream's JSON objects: the types of the calls' ``data`` (typed dicts, which
also describe them in the OpenAPI document) and the functions that build them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from cmdbgraph.db.tables import INT64_MAX, INT64_MIN
from cmdbgraph.services import records, related

Id = Annotated[int, Field(ge=1, le=INT64_MAX, json_schema_extra={"format": "int64"})]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX, json_schema_extra={"format": "int64"})]
Count = Annotated[int, Field(ge=0, le=INT64_MAX, json_schema_extra={"format": "int64"})]
Time = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
# Upstream's metadata.Time: "2006-01-02 15:04:05" (here in UTC).
GoTime = Annotated[
    str,
    Field(
        pattern=r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$",
        examples=["2026-11-29 08:30:00"],
        description="UTC, as upstream's `2006-01-02 15:04:05`.",
    ),
]
GO_TIME = "%Y-%m-%d %H:%M:%S"
Mapping = Annotated[str, Field(json_schema_extra={"enum": ["1:1", "1:n", "n:n"]})]
OnDelete = Annotated[str, Field(json_schema_extra={"enum": ["none", "delete_src", "delete_dest"]})]


@with_config(ConfigDict(extra="forbid"))
class InstAssociation(TypedDict):
    """A stored instance association, with upstream's keys in upstream's order."""

    id: Id
    bk_inst_id: Id
    bk_obj_id: Annotated[str, Field(examples=["bk_switch"])]
    bk_asst_inst_id: Id
    bk_asst_obj_id: Annotated[str, Field(examples=["host"])]
    bk_supplier_account: str
    bk_obj_asst_id: Annotated[str, Field(examples=["bk_switch_belong_host"])]
    bk_asst_id: Annotated[str, Field(examples=["belong"])]
    bk_biz_id: NotRequired[
        Annotated[Int64, Field(description="Absent when 0 (upstream leaves it out).")]
    ]


InstAssociationFields = with_config(ConfigDict(extra="forbid"))(
    TypedDict(  # type: ignore[operator]
        "InstAssociationFields", dict(InstAssociation.__annotations__), total=False
    )
)
InstAssociationFields.__doc__ = "A stored instance association, limited to the fields asked for."


@with_config(ConfigDict(extra="forbid"))
class ModelAssociation(TypedDict):
    """A model association (`bk_obj_asst_id` by convention
    `{bk_obj_id}_{bk_asst_id}_{bk_asst_obj_id}`), upstream's keys in upstream's order."""

    id: Id
    bk_supplier_account: str
    bk_obj_asst_id: str
    bk_obj_asst_name: str
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_asst_id: str
    mapping: Mapping
    on_delete: OnDelete
    ispre: bool


@with_config(ConfigDict(extra="forbid"))
class AssociationKind(TypedDict):
    """An association kind (`belong`, `connect`, ...), upstream's keys in upstream's order."""

    id: Id
    bk_asst_id: str
    bk_asst_name: str
    bk_supplier_account: str
    src_des: str
    dest_des: str
    direction: Annotated[
        str, Field(json_schema_extra={"enum": ["none", "src_to_dest", "bidirectional"]})
    ]
    ispre: bool


@with_config(ConfigDict(extra="forbid"))
class Model(TypedDict):
    """A model (`bk_obj_id` such as host or bk_switch), upstream's keys in upstream's order;
    callers name its permission `comobj_{id}`."""

    id: Id
    bk_classification_id: str
    bk_obj_icon: str
    bk_obj_id: str
    bk_obj_name: str
    bk_ishidden: bool
    ispre: bool
    bk_ispaused: bool
    position: Annotated[
        str, Field(description="Where the model sits in upstream's topology view (JSON text).")
    ]
    bk_supplier_account: str
    description: str
    creator: str
    modifier: str
    create_time: GoTime
    last_time: GoTime
    obj_sort_number: Int64


@with_config(ConfigDict(extra="allow"))
class Instance(TypedDict, total=False):
    """An instance: its attributes and the fields below, limited to the fields asked for when
    there are some."""

    bk_inst_id: Id
    bk_obj_id: str
    bk_inst_name: str
    bk_supplier_account: str
    creator: str
    create_time: Time
    last_time: Time
    bk_created_at: Time
    bk_updated_at: Time


@with_config(ConfigDict(extra="forbid"))
class InstTopoNode(TypedDict):
    """An instance in upstream's association topology (metadata.InstNameAsst), its keys in
    upstream's order."""

    id: Annotated[str, Field(description="The instance id, as a string.", examples=["22"])]
    bk_obj_id: Annotated[str, Field(examples=["host"])]
    bk_obj_icon: Annotated[str, Field(examples=["icon-cc-host"])]
    bk_inst_id: Id
    bk_obj_name: Annotated[str, Field(examples=["主机"])]
    bk_inst_name: Annotated[str, Field(examples=["10.0.0.2"])]
    asso_id: Annotated[Id, Field(description="The instance association leading to it.")]


@with_config(ConfigDict(extra="forbid"))
class InstTopo(TypedDict):
    """A model in upstream's association topology (metadata.CommonInstTopo): the model's
    fields in InstNameAsst's keys (the instance's left empty), then its instances."""

    id: Annotated[str, Field(json_schema_extra={"const": ""})]
    bk_obj_id: Annotated[str, Field(examples=["host"])]
    bk_obj_icon: Annotated[str, Field(examples=["icon-cc-host"])]
    bk_inst_id: Annotated[int, Field(json_schema_extra={"const": 0})]
    bk_obj_name: Annotated[str, Field(examples=["主机"])]
    bk_inst_name: Annotated[str, Field(json_schema_extra={"const": ""})]
    asso_id: Annotated[int, Field(json_schema_extra={"const": 0})]
    count: Annotated[Count, Field(description="How many children.")]
    children: list[InstTopoNode]


@with_config(ConfigDict(extra="forbid"))
class InstBaseInfo(TypedDict):
    """An instance's id and name (metadata.InstBaseInfo)."""

    bk_inst_id: Id
    bk_inst_name: str


def association(a: records.InstAssociation) -> InstAssociation:
    """Upstream's ``InstAsst``: its Go field order, ``bk_biz_id`` omitted when 0."""
    built: InstAssociation = {
        "id": a.id,
        "bk_inst_id": a.bk_inst_id,
        "bk_obj_id": a.bk_obj_id,
        "bk_asst_inst_id": a.bk_asst_inst_id,
        "bk_asst_obj_id": a.bk_asst_obj_id,
        "bk_supplier_account": a.bk_supplier_account,
        "bk_obj_asst_id": a.bk_obj_asst_id,
        "bk_asst_id": a.bk_asst_id,
    }
    if a.bk_biz_id:
        built["bk_biz_id"] = a.bk_biz_id
    return built


def model_association(m: records.ModelAssociation) -> ModelAssociation:
    return {
        "id": m.id,
        "bk_supplier_account": m.bk_supplier_account,
        "bk_obj_asst_id": m.bk_obj_asst_id,
        "bk_obj_asst_name": m.bk_obj_asst_name,
        "bk_obj_id": m.bk_obj_id,
        "bk_asst_obj_id": m.bk_asst_obj_id,
        "bk_asst_id": m.bk_asst_id,
        "mapping": m.mapping,
        "on_delete": m.on_delete,
        "ispre": m.ispre,
    }


def association_kind(k: records.AssociationKind) -> AssociationKind:
    """Upstream's metadata.AssociationKind."""
    return {
        "id": k.id,
        "bk_asst_id": k.bk_asst_id,
        "bk_asst_name": k.bk_asst_name,
        "bk_supplier_account": k.bk_supplier_account,
        "src_des": k.src_des,
        "dest_des": k.dest_des,
        "direction": k.direction,
        "ispre": k.ispre,
    }


def go_time(moment: datetime) -> str:
    """Upstream's metadata.Time, in UTC."""
    return moment.astimezone(UTC).strftime(GO_TIME)


def model(m: records.Model) -> Model:
    """Upstream's metadata.Object."""
    return {
        "id": m.id,
        "bk_classification_id": m.bk_classification_id,
        "bk_obj_icon": m.bk_obj_icon,
        "bk_obj_id": m.bk_obj_id,
        "bk_obj_name": m.bk_obj_name,
        "bk_ishidden": m.bk_ishidden,
        "ispre": m.ispre,
        "bk_ispaused": m.bk_ispaused,
        "position": m.position,
        "bk_supplier_account": m.bk_supplier_account,
        "description": m.description,
        "creator": m.creator,
        "modifier": m.modifier,
        "create_time": go_time(m.create_time),
        "last_time": go_time(m.last_time),
        "obj_sort_number": m.obj_sort_number,
    }


def mongo_time(moment: datetime) -> str:
    """A stored date as upstream's rows carry it: MongoDB's driver writes Go's RFC 3339 in
    UTC, milliseconds without trailing zeros (``2026-11-29T08:30:00.12Z``)."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    millis = f"{utc.microsecond // 1000:03d}".rstrip("0")
    return f"{text}.{millis}Z" if millis else f"{text}Z"


def instance(i: records.Instance) -> Instance:
    """An instance as upstream's rows: one map (keys sorted, as upstream's encoder writes
    maps) of its attributes and fields, the two timestamps also under their aliases."""
    created, modified = mongo_time(i.create_time), mongo_time(i.last_time)
    built: dict[str, Any] = {
        "bk_created_at": created,
        "bk_updated_at": modified,
        **i.attributes,
        "bk_inst_id": i.bk_inst_id,
        "bk_obj_id": i.bk_obj_id,
        "bk_inst_name": i.bk_inst_name,
        "bk_supplier_account": i.bk_supplier_account,
        "creator": i.creator,
        "create_time": created,
        "last_time": modified,
    }
    return dict(sorted(built.items()))  # type: ignore[return-value]  # attributes: extra keys


def only(fields: list[str], item: Any) -> Any:
    """Upstream's ``fields``: keep only these keys (all of them when empty), in the item's
    own order (a struct's field order, or a map's sorted keys), whatever the order asked."""
    if not fields:
        return item
    wanted = set(fields)
    return {name: value for name, value in item.items() if name in wanted}


def instance_as_upstream(i: records.Instance) -> Instance:
    """An instance row (``instance``) with, for upstream's built-in models, its id and name
    also under upstream's fields for them (a host's ``bk_host_id`` and ``bk_host_innerip``)."""
    row: dict[str, Any] = dict(instance(i))
    row[related.id_field(i.bk_obj_id)] = i.bk_inst_id
    row[related.name_field(i.bk_obj_id)] = i.bk_inst_name
    return dict(sorted(row.items()))  # type: ignore[return-value]  # attributes: extra keys


def topology(group: related.ChildGroup) -> InstTopo:
    """Upstream's CommonInstTopo of one model's children."""
    return {
        "id": "",
        "bk_obj_id": group.bk_obj_id,
        "bk_obj_icon": group.bk_obj_icon,
        "bk_inst_id": 0,
        "bk_obj_name": group.bk_obj_name,
        "bk_inst_name": "",
        "asso_id": 0,
        "count": len(group.children),
        "children": [
            {
                "id": str(child.bk_inst_id),
                "bk_obj_id": group.bk_obj_id,
                "bk_obj_icon": group.bk_obj_icon,
                "bk_inst_id": child.bk_inst_id,
                "bk_obj_name": group.bk_obj_name,
                "bk_inst_name": child.bk_inst_name,
                "asso_id": child.association_id,
            }
            for child in group.children
        ],
    }


def base_info(i: records.Instance) -> InstBaseInfo:
    return {"bk_inst_id": i.bk_inst_id, "bk_inst_name": i.bk_inst_name}
