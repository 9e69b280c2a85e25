"""GraphQL object types. Field names keep the BlueKing names, in camelCase."""

from __future__ import annotations

import base64
import dataclasses
import enum
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry
from strawberry.types.base import get_object_definition

from cmdbgraph.schema.context import Info
from cmdbgraph.schema.scalars import JSON, BigInt
from cmdbgraph.schema.topology import (
    TOPOLOGY_DESCRIPTION,
    Topology,
    TopologyDirection,
    neighbourhood,
)
from cmdbgraph.services import associations, paging, records
from cmdbgraph.services.errors import ErrorCode as ServiceErrorCode
from cmdbgraph.services.limits import page_bounds

# The service's own enum, shown to GraphQL as ErrorCode (its names; values are upstream's codes).
ErrorCode = ServiceErrorCode
strawberry.enum(
    ServiceErrorCode,
    name="ErrorCode",
    description="Stable names of BlueKing CMDB's numeric error codes (see `bkErrorCode`).",
)


def nested_page_size(info: Info, limit: int | None) -> int:
    """A nested list's page size: the default when not given; upstream's codes when out of
    bounds."""
    limits = info.context.limits
    _, size = page_bounds(
        0,
        limit,
        default=limits.default_nested_page_size,
        maximum=limits.max_nested_page_size,
        start_name="offset",
        limit_name="limit",
    )
    return size


_BUILDERS: dict[type, Callable[[object], Any]] = {}
Built = TypeVar("Built", bound="FromRecord")


def _builder(cls: type) -> Callable[[object], Any]:
    """What makes a ``cls`` from a record: its plain fields copied. A plain dataclass (which
    strawberry types are) only sets its fields in ``__init__``: they are set directly, without
    the keyword arguments (a batch builds 200 associations)."""
    definition = get_object_definition(cls, strict=True)
    names = tuple(f.python_name for f in definition.fields if f.base_resolver is None)
    fields = dataclasses.fields(cls)
    direct = (
        "__post_init__" not in dir(cls)
        and "__slots__" not in cls.__dict__
        and {f.name for f in fields if f.init} == set(names)
        and all(
            f.init
            or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in fields
        )
    )
    if not direct:
        return lambda record: cls(**{name: getattr(record, name) for name in names})
    new = object.__new__

    def build(record: object) -> Any:
        built: Any = new(cls)
        values = built.__dict__
        for name in names:
            values[name] = getattr(record, name)
        return built

    return build


class FromRecord:
    """Builds a type from the service record of the same name: every plain field is copied."""

    @classmethod
    def from_record(cls: type[Built], record: object) -> Built:
        build = _BUILDERS.get(cls)
        if build is None:
            build = _BUILDERS[cls] = _builder(cls)
        return build(record)


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


@strawberry.interface(
    description="An object that can be fetched again by its `nodeId` (`node`, `nodes`): "
    "Relay's Node, its id field named `nodeId` (this API's `id` fields are BlueKing's numeric "
    'ids; Relay\'s compiler takes `nodeInterfaceIdField: "nodeId"`).'
)
class Node:
    @strawberry.field(description="A global id: the type and its key, opaque.")
    def node_id(self) -> strawberry.ID:
        raise NotImplementedError  # every implementing type answers its own


def global_id(type_name: str, key: object) -> strawberry.ID:
    """The opaque global id of the object of ``type_name`` whose key is ``key`` (base64 of
    ``Type:key``, as graphql-relay writes them)."""
    return strawberry.ID(base64.b64encode(f"{type_name}:{key}".encode()).decode())


def parse_global_id(node_id: str) -> tuple[str, str] | None:
    """``(type name, key)`` of a global id; None for anything this service did not write."""
    try:
        text = base64.b64decode(node_id.encode("ascii"), validate=True).decode()
    except (UnicodeError, ValueError):
        return None
    type_name, sep, key = text.partition(":")
    return (type_name, key) if sep and type_name in NODE_TYPES and key else None


NODE_TYPES = ("Instance", "InstAssociation", "Model")


@strawberry.type(description="A model (object type) such as `host` or `bk_switch`.")
class Model(FromRecord, Node):
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

    @strawberry.field(description="A global id: the type and its key, opaque.")
    def node_id(self) -> strawberry.ID:
        return global_id("Model", self.bk_obj_id)


@strawberry.type(description="An association kind such as `belong` or `connect`.")
class AssociationKind(FromRecord):
    id: BigInt
    bk_asst_id: str
    bk_asst_name: str
    src_des: str
    dest_des: str
    direction: str
    ispre: bool


@strawberry.type(description="An association between two models, e.g. `bk_switch_connect_host`.")
class ModelAssociation:
    id: BigInt
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
            id=BigInt(r.id),
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
class Instance(FromRecord, Node):
    bk_inst_id: BigInt
    bk_obj_id: str
    bk_inst_name: str
    attributes: JSON
    bk_supplier_account: str
    creator: str
    create_time: datetime
    last_time: datetime

    @strawberry.field(description="A global id: the type and its key, opaque.")
    def node_id(self) -> strawberry.ID:
        return global_id("Instance", self.bk_inst_id)

    @strawberry.field(description="The model of this instance.")
    async def model(self, info: Info) -> Model | None:
        record = await info.context.loaders.model.load(self.bk_obj_id)
        return None if record is None else Model.from_record(record)

    @strawberry.field(
        description="Associations where this instance is the source, the first `limit` by id "
        "(default `CMDBGRAPH_DEFAULT_NESTED_PAGE_SIZE`, at most "
        "`CMDBGRAPH_MAX_NESTED_PAGE_SIZE`).",
        deprecation_reason="Use associationsAsSourceConnection: it pages by cursor.",
    )
    async def associations_as_source(
        self, info: Info, limit: int | None = None
    ) -> list[InstAssociation]:
        key = (self.bk_inst_id, nested_page_size(info, limit))
        found = await info.context.loaders.associations_as_source.load(key)
        return [InstAssociation.from_record(r) for r in found]

    @strawberry.field(
        description="Associations where this instance is the target, the first `limit` by id "
        "(default `CMDBGRAPH_DEFAULT_NESTED_PAGE_SIZE`, at most "
        "`CMDBGRAPH_MAX_NESTED_PAGE_SIZE`).",
        deprecation_reason="Use associationsAsTargetConnection: it pages by cursor.",
    )
    async def associations_as_target(
        self, info: Info, limit: int | None = None
    ) -> list[InstAssociation]:
        key = (self.bk_inst_id, nested_page_size(info, limit))
        found = await info.context.loaders.associations_as_target.load(key)
        return [InstAssociation.from_record(r) for r in found]

    @strawberry.field(
        description="Associations where this instance is the source, by id, a page at a time "
        "(`first` defaults to `CMDBGRAPH_DEFAULT_NESTED_PAGE_SIZE`, at most "
        "`CMDBGRAPH_MAX_NESTED_PAGE_SIZE`)."
    )
    async def associations_as_source_connection(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[InstAssociation]:
        return await self._associations(info, False, first, after, last, before)

    @strawberry.field(
        description="Associations where this instance is the target, by id, a page at a time "
        "(`first` defaults to `CMDBGRAPH_DEFAULT_NESTED_PAGE_SIZE`, at most "
        "`CMDBGRAPH_MAX_NESTED_PAGE_SIZE`)."
    )
    async def associations_as_target_connection(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[InstAssociation]:
        return await self._associations(info, True, first, after, last, before)

    @strawberry.field(description=TOPOLOGY_DESCRIPTION)
    async def topology(
        self,
        info: Info,
        depth: int = 1,
        direction: TopologyDirection = TopologyDirection.BOTH,
        bk_asst_ids: list[str] | None = None,
        bk_obj_ids: list[str] | None = None,
        max_nodes: int | None = None,
    ) -> Topology:
        return await neighbourhood(
            info,
            int(self.bk_inst_id),
            depth=depth,
            direction=direction,
            bk_asst_ids=bk_asst_ids,
            bk_obj_ids=bk_obj_ids,
            max_nodes=max_nodes,
        )

    async def _associations(
        self, info: Info, as_target: bool, first, after, last, before
    ) -> Connection[InstAssociation]:
        win = page_window(info, associations.LIST, first, after, last, before, nested=True)
        loaders = info.context.loaders
        loader = loaders.target_slices if as_target else loaders.source_slices
        found = await loader.load((self.bk_inst_id, win))
        flt = (
            associations.AssociationFilter(bk_asst_inst_id=self.bk_inst_id)
            if as_target
            else associations.AssociationFilter(bk_inst_id=self.bk_inst_id)
        )
        db = info.context.db
        return connection(
            found,
            associations.LIST,
            lambda a: a.id,
            InstAssociation.from_record,
            lambda: associations.count_associations(db, flt),
        )


@strawberry.type(description="An association between two instances.")
class InstAssociation(FromRecord, Node):
    id: BigInt
    bk_obj_asst_id: str
    bk_asst_id: str
    bk_obj_id: str
    bk_inst_id: BigInt
    bk_asst_obj_id: str
    bk_asst_inst_id: BigInt
    bk_supplier_account: str
    bk_biz_id: BigInt
    creator: str
    create_time: datetime

    @strawberry.field(description="A global id: the type and its key, opaque.")
    def node_id(self) -> strawberry.ID:
        return global_id("InstAssociation", self.id)

    @strawberry.field(description="The source instance.")
    async def source(self, info: Info) -> Instance | None:
        record = await info.context.loaders.instance.load(self.bk_inst_id)
        return None if record is None else Instance.from_record(record)

    @strawberry.field(description="The target instance.")
    async def target(self, info: Info) -> Instance | None:
        record = await info.context.loaders.instance.load(self.bk_asst_inst_id)
        return None if record is None else Instance.from_record(record)


@strawberry.enum(description="What happened to an instance association.")
class InstAssociationEventType(enum.Enum):
    CREATE = "create"
    DELETE = "delete"


@strawberry.type(description="An instance association created or deleted, as it committed.")
class InstAssociationEvent:
    cursor: str = strawberry.field(
        description="This event's place in the stream: subscribe with `after:` it to go on "
        "after it (after a disconnect, say)."
    )
    event_type: InstAssociationEventType
    create_time: datetime = strawberry.field(description="When the change was made.")
    association: InstAssociation = strawberry.field(
        description="The association as it was created, or as it was when deleted."
    )


@strawberry.type(description="One audited change.")
class AuditEntry(FromRecord):
    id: BigInt
    audit_type: str
    resource_type: str
    action: str
    resource_id: BigInt
    resource_name: str
    operation_detail: JSON
    bk_username: str
    bk_supplier_account: str
    app_code: str
    request_id: str
    operation_time: datetime


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


# --- Cursor connections (Relay) -------------------------------------------------------------

Item = TypeVar("Item")


@strawberry.type(description="Where a page stands in its list (Relay's `PageInfo`).")
class PageInfo:
    start_cursor: str | None
    end_cursor: str | None
    found: strawberry.Private[paging.Slice]

    @strawberry.field(description="Whether the list goes on after this page.")
    async def has_next_page(self) -> bool:
        return await self.found.has_next()

    @strawberry.field(
        description="Whether the list holds items before this page (read from the database "
        "only when asked)."
    )
    async def has_previous_page(self) -> bool:
        return await self.found.has_previous()


@strawberry.type(description="An item of a page and its cursor.")
class Edge(Generic[Item]):
    cursor: str = strawberry.field(
        description="Give it as `after` (or `before`) to read on from this item."
    )
    node: Item


@strawberry.type(
    description="A page of a list, read by cursor at the same cost anywhere in the list "
    "(Relay's connection: `first`/`after` forward, `last`/`before` backward)."
)
class Connection(Generic[Item]):
    edges: list[Edge[Item]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(
        description="How many items the whole list holds: counted only when asked for."
    )
    async def total_count(self) -> int:
        return await self.count()


def connection(
    found: paging.Slice,
    list_kind: str,
    key: Callable[[Any], int],
    node: Callable[[Any], Any],
    count: Callable[[], Awaitable[int]],
) -> Connection:
    """A page of ``found`` (a slice of the list ``list_kind``), each item made a node."""
    edges = [
        Edge(cursor=paging.encode(list_kind, key(item)), node=node(item)) for item in found.items
    ]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
            found=found,
        ),
        count=count,
    )


def page_window(
    info: Info,
    list_kind: str,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    *,
    nested: bool = False,
) -> paging.Window:
    """Relay's arguments as a window of the list ``list_kind``, with this service's page sizes
    (the nested ones for an instance's associations)."""
    limits = info.context.limits
    return paging.window(
        list_kind,
        first=first,
        after=after,
        last=last,
        before=before,
        default=limits.default_nested_page_size if nested else limits.default_page_size,
        maximum=limits.max_nested_page_size if nested else limits.max_page_size,
    )
