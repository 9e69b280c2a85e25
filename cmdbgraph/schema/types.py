"""GraphQL object types. Field names keep the BlueKing names, in camelCase."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from cmdbgraph.resolvers.context import Info
from cmdbgraph.services import records
from cmdbgraph.services.errors import ErrorCode as ServiceErrorCode

ErrorCode = strawberry.enum(
    ServiceErrorCode,
    name="ErrorCode",
    description="Stable names of BlueKing CMDB's numeric error codes (see `bkErrorCode`).",
)


@strawberry.enum(description="How many instances each side of a model association may link.")
class AssociationMapping(enum.Enum):
    ONE_TO_ONE = "1:1"
    ONE_TO_MANY = "1:n"
    MANY_TO_MANY = "n:n"


@strawberry.enum(description="What deleting an instance does to its associations.")
class OnDelete(enum.Enum):
    NONE = "none"
    DELETE_SRC = "delete_src"
    DELETE_DEST = "delete_dest"


@strawberry.type(description="A model (object type) such as `host` or `bk_switch`.")
class Model:
    bk_obj_id: str
    bk_obj_name: str
    bk_classification_id: str
    bk_obj_icon: str
    ispre: bool
    bk_ispaused: bool
    bk_supplier_account: str
    creator: str
    modifier: str
    create_time: datetime
    last_time: datetime

    @classmethod
    def from_record(cls, r: records.Model) -> Model:
        return cls(
            bk_obj_id=r.bk_obj_id,
            bk_obj_name=r.bk_obj_name,
            bk_classification_id=r.bk_classification_id,
            bk_obj_icon=r.bk_obj_icon,
            ispre=r.ispre,
            bk_ispaused=r.bk_ispaused,
            bk_supplier_account=r.bk_supplier_account,
            creator=r.creator,
            modifier=r.modifier,
            create_time=r.create_time,
            last_time=r.last_time,
        )


@strawberry.type(description="An association kind such as `belong` or `connect`.")
class AssociationKind:
    bk_asst_id: str
    bk_asst_name: str
    src_des: str
    dest_des: str
    direction: str
    ispre: bool

    @classmethod
    def from_record(cls, r: records.AssociationKind) -> AssociationKind:
        return cls(
            bk_asst_id=r.bk_asst_id,
            bk_asst_name=r.bk_asst_name,
            src_des=r.src_des,
            dest_des=r.dest_des,
            direction=r.direction,
            ispre=r.ispre,
        )


@strawberry.type(description="An association between two models, e.g. `bk_switch_connect_host`.")
class ModelAssociation:
    bk_obj_asst_id: str
    bk_obj_asst_name: str
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_asst_id: str
    mapping: AssociationMapping
    on_delete: OnDelete
    ispre: bool
    bk_supplier_account: str

    @classmethod
    def from_record(cls, r: records.ModelAssociation) -> ModelAssociation:
        return cls(
            bk_obj_asst_id=r.bk_obj_asst_id,
            bk_obj_asst_name=r.bk_obj_asst_name,
            bk_obj_id=r.bk_obj_id,
            bk_asst_obj_id=r.bk_asst_obj_id,
            bk_asst_id=r.bk_asst_id,
            mapping=AssociationMapping(r.mapping),
            on_delete=OnDelete(r.on_delete),
            ispre=r.ispre,
            bk_supplier_account=r.bk_supplier_account,
        )


@strawberry.type(description="An instance of a model.")
class Instance:
    bk_inst_id: int
    bk_obj_id: str
    bk_inst_name: str
    attributes: JSON
    bk_supplier_account: str
    creator: str
    create_time: datetime
    last_time: datetime

    @classmethod
    def from_record(cls, r: records.Instance) -> Instance:
        return cls(
            bk_inst_id=r.bk_inst_id,
            bk_obj_id=r.bk_obj_id,
            bk_inst_name=r.bk_inst_name,
            attributes=r.attributes,
            bk_supplier_account=r.bk_supplier_account,
            creator=r.creator,
            create_time=r.create_time,
            last_time=r.last_time,
        )

    @strawberry.field(description="The model of this instance.")
    async def model(self, info: Info) -> Model | None:
        record = await info.context.loaders.model.load(self.bk_obj_id)
        return None if record is None else Model.from_record(record)

    @strawberry.field(description="Associations where this instance is the source.")
    async def associations_as_source(self, info: Info) -> list[InstAssociation]:
        found = await info.context.loaders.associations_as_source.load(self.bk_inst_id)
        return [InstAssociation.from_record(r) for r in found]

    @strawberry.field(description="Associations where this instance is the target.")
    async def associations_as_target(self, info: Info) -> list[InstAssociation]:
        found = await info.context.loaders.associations_as_target.load(self.bk_inst_id)
        return [InstAssociation.from_record(r) for r in found]


@strawberry.type(description="An association between two instances.")
class InstAssociation:
    id: int
    bk_obj_asst_id: str
    bk_asst_id: str
    bk_obj_id: str
    bk_inst_id: int
    bk_asst_obj_id: str
    bk_asst_inst_id: int
    bk_supplier_account: str
    bk_biz_id: int
    creator: str
    create_time: datetime

    @classmethod
    def from_record(cls, r: records.InstAssociation) -> InstAssociation:
        return cls(
            id=r.id,
            bk_obj_asst_id=r.bk_obj_asst_id,
            bk_asst_id=r.bk_asst_id,
            bk_obj_id=r.bk_obj_id,
            bk_inst_id=r.bk_inst_id,
            bk_asst_obj_id=r.bk_asst_obj_id,
            bk_asst_inst_id=r.bk_asst_inst_id,
            bk_supplier_account=r.bk_supplier_account,
            bk_biz_id=r.bk_biz_id,
            creator=r.creator,
            create_time=r.create_time,
        )

    @strawberry.field(description="The source instance.")
    async def source(self, info: Info) -> Instance | None:
        record = await info.context.loaders.instance.load(self.bk_inst_id)
        return None if record is None else Instance.from_record(record)

    @strawberry.field(description="The target instance.")
    async def target(self, info: Info) -> Instance | None:
        record = await info.context.loaders.instance.load(self.bk_asst_inst_id)
        return None if record is None else Instance.from_record(record)


@strawberry.type(description="One audited change.")
class AuditEntry:
    id: int
    audit_type: str
    resource_type: str
    action: str
    resource_id: int
    resource_name: str
    operation_detail: JSON
    bk_username: str
    bk_supplier_account: str
    app_code: str
    request_id: str
    operation_time: datetime

    @classmethod
    def from_record(cls, r: records.AuditEntry) -> AuditEntry:
        return cls(
            id=r.id,
            audit_type=r.audit_type,
            resource_type=r.resource_type,
            action=r.action,
            resource_id=r.resource_id,
            resource_name=r.resource_name,
            operation_detail=r.operation_detail,
            bk_username=r.bk_username,
            bk_supplier_account=r.bk_supplier_account,
            app_code=r.app_code,
            request_id=r.request_id,
            operation_time=r.operation_time,
        )


@strawberry.type
class InstancePage:
    total_count: int
    items: list[Instance]


@strawberry.type
class InstAssociationPage:
    total_count: int
    items: list[InstAssociation]


@strawberry.type
class AuditEntryPage:
    total_count: int
    items: list[AuditEntry]
