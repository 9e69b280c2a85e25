"""Query resolvers, one class per domain, composed into ``Query``."""

from __future__ import annotations

from typing import Annotated

import strawberry

from cmdbgraph.resolvers.topology import TopologyQueries
from cmdbgraph.schema.context import Info
from cmdbgraph.schema.inputs import AuditEntryFilter, InstAssociationFilter
from cmdbgraph.schema.scalars import JSON, BigInt
from cmdbgraph.schema.types import (
    AssociationKind,
    AssociationMapping,
    AuditEntry,
    AuditEntryPage,
    Connection,
    Instance,
    InstancePage,
    InstAssociation,
    InstAssociationPage,
    Model,
    ModelAssociation,
    Node,
    connection,
    page_window,
    parse_global_id,
)
from cmdbgraph.services import associations, audit, catalog, conditions, instances, kinds
from cmdbgraph.services.errors import ErrorCode, exceeds_limit, verbatim
from cmdbgraph.services.limits import page_bounds


def _where(value: object, fields: conditions.Fields) -> conditions.Node | None:
    """A ``where`` argument: upstream's condition language; what cannot run is refused with
    1199006 and the reason as its message."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise verbatim(ErrorCode.PARAMETER_CHECK_FAILED, "where must be a JSON object")
    try:
        return conditions.parse(value, fields)
    except conditions.ConditionError as error:
        raise verbatim(ErrorCode.PARAMETER_CHECK_FAILED, error.text) from None


def _page(info: Info, offset: int, limit: int | None) -> tuple[int, int]:
    limits = info.context.limits
    return page_bounds(
        offset,
        limit,
        default=limits.default_page_size,
        maximum=limits.max_page_size,
        start_name="offset",
        limit_name="limit",
    )


def _association_filter(flt: InstAssociationFilter) -> associations.AssociationFilter:
    return associations.AssociationFilter(
        ids=flt.ids,
        bk_obj_asst_id=flt.bk_obj_asst_id,
        bk_asst_id=flt.bk_asst_id,
        bk_obj_id=flt.bk_obj_id,
        bk_asst_obj_id=flt.bk_asst_obj_id,
        bk_inst_id=flt.bk_inst_id,
        bk_asst_inst_id=flt.bk_asst_inst_id,
        involving_inst_id=flt.involving_inst_id,
        condition=_where(flt.where, associations.CONDITION_FIELDS),
    )


def _audit_filter(flt: AuditEntryFilter) -> audit.AuditFilter:
    return audit.AuditFilter(
        resource_type=flt.resource_type,
        action=flt.action,
        resource_id=flt.resource_id,
        bk_username=flt.bk_username,
        request_id=flt.request_id,
    )


@strawberry.type
class CatalogQueries:
    @strawberry.field(description="Every model.")
    async def models(self, info: Info) -> list[Model]:
        return [Model.from_record(m) for m in await catalog.list_models(info.context.db)]

    @strawberry.field(description="Every association kind.")
    async def association_kinds(self, info: Info) -> list[AssociationKind]:
        found = await kinds.list_association_kinds(info.context.db)
        return [AssociationKind.from_record(k) for k in found]

    @strawberry.field(description="Model associations, filtered by source, target or kind.")
    async def model_associations(
        self,
        info: Info,
        bk_obj_id: str | None = None,
        bk_asst_obj_id: str | None = None,
        bk_asst_id: str | None = None,
        mapping: AssociationMapping | None = None,
    ) -> list[ModelAssociation]:
        found = await catalog.list_model_associations(
            info.context.db,
            catalog.ModelAssociationFilter(
                bk_obj_id=bk_obj_id,
                bk_asst_obj_id=bk_asst_obj_id,
                bk_asst_id=bk_asst_id,
                mapping=None if mapping is None else mapping.value,
            ),
        )
        return [ModelAssociation.from_record(m) for m in found]


@strawberry.type
class InstanceQueries:
    @strawberry.field(
        description="Instances, optionally of one model, ordered by id.",
        deprecation_reason="Use instancesConnection: it pages by cursor, at the same cost "
        "anywhere in the list.",
    )
    async def instances(
        self,
        info: Info,
        bk_obj_id: str | None = None,
        name_contains: str | None = None,
        offset: int = 0,
        limit: int | None = None,
        where: Annotated[
            JSON | None,
            strawberry.argument(
                description="Upstream's condition language (MongoDB's operators, as in "
                "search_inst_by_object: see the README's *Conditions*) on the instances' "
                'fields and attributes, e.g. `{"bk_inst_name": {"$in": ["sw-01", "sw-02"]}}`.'
            ),
        ] = None,
    ) -> InstancePage:
        offset, limit = _page(info, offset, limit)
        most = info.context.limits.max_filter_length
        if name_contains is not None and len(name_contains) > most:
            raise exceeds_limit("nameContains", most)
        page = await instances.list_instances(
            info.context.db,
            instances.InstanceFilter(
                bk_obj_id=bk_obj_id,
                name_contains=name_contains,
                condition=_where(where, instances.CONDITION_FIELDS),
            ),
            offset=offset,
            limit=limit,
        )
        return InstancePage(
            total_count=page.total_count, items=[Instance.from_record(i) for i in page.items]
        )

    @strawberry.field(
        description="Instances, optionally of one model, by id, a page at a time (`first` "
        "defaults to `CMDBGRAPH_DEFAULT_PAGE_SIZE`, at most `CMDBGRAPH_MAX_PAGE_SIZE`)."
    )
    async def instances_connection(
        self,
        info: Info,
        bk_obj_id: str | None = None,
        name_contains: str | None = None,
        where: Annotated[
            JSON | None,
            strawberry.argument(description="Upstream's condition language, as for `instances`."),
        ] = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Instance]:
        win = page_window(info, instances.LIST, first, after, last, before)
        most = info.context.limits.max_filter_length
        if name_contains is not None and len(name_contains) > most:
            raise exceeds_limit("nameContains", most)
        flt = instances.InstanceFilter(
            bk_obj_id=bk_obj_id,
            name_contains=name_contains,
            condition=_where(where, instances.CONDITION_FIELDS),
        )
        db = info.context.db
        found = await instances.instance_slice(db, flt, win)
        return connection(
            found,
            instances.LIST,
            lambda i: i.bk_inst_id,
            Instance.from_record,
            lambda: instances.count_instances(db, flt),
        )

    @strawberry.field(description="One instance, with its associations in both directions.")
    async def instance(self, info: Info, bk_inst_id: BigInt) -> Instance | None:
        record = await info.context.loaders.instance.load(bk_inst_id)
        return None if record is None else Instance.from_record(record)


@strawberry.type
class AssociationQueries:
    @strawberry.field(
        description="Instance associations, ordered by id.",
        deprecation_reason="Use instAssociationsConnection: it pages by cursor, at the same "
        "cost anywhere in the list.",
    )
    async def inst_associations(
        self,
        info: Info,
        filter: InstAssociationFilter | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> InstAssociationPage:
        offset, limit = _page(info, offset, limit)
        page = await associations.list_associations(
            info.context.db,
            _association_filter(filter or InstAssociationFilter()),
            offset=offset,
            limit=limit,
        )
        return InstAssociationPage(
            total_count=page.total_count,
            items=[InstAssociation.from_record(a) for a in page.items],
        )

    @strawberry.field(
        description="Instance associations, by id, a page at a time (`first` defaults to "
        "`CMDBGRAPH_DEFAULT_PAGE_SIZE`, at most `CMDBGRAPH_MAX_PAGE_SIZE`)."
    )
    async def inst_associations_connection(
        self,
        info: Info,
        filter: InstAssociationFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[InstAssociation]:
        win = page_window(info, associations.LIST, first, after, last, before)
        flt = _association_filter(filter or InstAssociationFilter())
        db = info.context.db
        found = await associations.association_slice(db, flt, win)
        return connection(
            found,
            associations.LIST,
            lambda a: a.id,
            InstAssociation.from_record,
            lambda: associations.count_associations(db, flt),
        )

    @strawberry.field(
        description="Audit entries, newest first, a page at a time (`first` defaults to "
        "`CMDBGRAPH_DEFAULT_PAGE_SIZE`, at most `CMDBGRAPH_MAX_PAGE_SIZE`)."
    )
    async def audit_entries_connection(
        self,
        info: Info,
        filter: AuditEntryFilter | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[AuditEntry]:
        win = page_window(info, audit.LIST, first, after, last, before)
        flt = _audit_filter(filter or AuditEntryFilter())
        db = info.context.db
        found = await audit.audit_slice(db, flt, win)
        return connection(
            found,
            audit.LIST,
            lambda e: e.id,
            AuditEntry.from_record,
            lambda: audit.count_audit_entries(db, flt),
        )

    @strawberry.field(
        description="Audit entries, newest first.",
        deprecation_reason="Use auditEntriesConnection: it pages by cursor, at the same cost "
        "anywhere in the list.",
    )
    async def audit_entries(
        self,
        info: Info,
        filter: AuditEntryFilter | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> AuditEntryPage:
        offset, limit = _page(info, offset, limit)
        page = await audit.list_audit_entries(
            info.context.db, _audit_filter(filter or AuditEntryFilter()), offset=offset, limit=limit
        )
        return AuditEntryPage(
            total_count=page.total_count, items=[AuditEntry.from_record(e) for e in page.items]
        )


async def _node(info: Info, node_id: str) -> Node | None:
    parsed = parse_global_id(node_id)
    if parsed is None:
        raise verbatim(ErrorCode.PARAMETER_CHECK_FAILED, f"{node_id!r} is not an id of this API")
    type_name, key = parsed
    loaders = info.context.loaders
    if type_name == "Model":
        model = await loaders.model.load(key)
        return None if model is None else Model.from_record(model)
    if not key.lstrip("-").isdigit() or not -(2**63) <= int(key) < 2**63:
        return None
    if type_name == "Instance":
        instance = await loaders.instance.load(int(key))
        return None if instance is None else Instance.from_record(instance)
    found = await associations.find_associations(
        info.context.db, associations.AssociationFilter(ids=[int(key)])
    )
    return InstAssociation.from_record(found[0]) if found else None


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="The object whose `nodeId` this is (null when it is gone): Relay's refetch."
    )
    async def node(self, info: Info, node_id: strawberry.ID) -> Node | None:
        return await _node(info, node_id)

    @strawberry.field(
        description="The objects of these `nodeId`s, in their order (null for one that is "
        "gone); at most `CMDBGRAPH_MAX_PAGE_SIZE`."
    )
    async def nodes(self, info: Info, node_ids: list[strawberry.ID]) -> list[Node | None]:
        most = info.context.limits.max_page_size
        if len(node_ids) > most:
            raise exceeds_limit("nodeIds", most)
        return [await _node(info, node_id) for node_id in node_ids]


@strawberry.type
class Query(CatalogQueries, InstanceQueries, AssociationQueries, NodeQueries, TopologyQueries):
    pass
