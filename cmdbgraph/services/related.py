"""Reads across associations: a model's associations with the instances at their ends, an
instance's children grouped by model, and the instances associated with one instance (upstream's
find_instassociation_with_inst, search_inst_association_topo and
search_inst_asst_object_inst_base_info).

Where upstream's answer depends on the order of a Go map (the models of a reply), the order
here is fixed: models in the order they first appear, or in model id order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import inst_associations, instances, models
from cmdbgraph.services import associations, catalog, conditions
from cmdbgraph.services import instances as instance_service
from cmdbgraph.services.errors import ZH, ErrorCode, parameter_invalid, verbatim
from cmdbgraph.services.records import Instance, InstAssociation, build_all

# Upstream's id and name fields of its built-in models' instances (GetInstIDFieldByObjID,
# GetInstNameFieldName); every other model's are bk_inst_id and bk_inst_name.
ID_FIELDS = {
    "bk_biz_set_obj": "bk_biz_set_id",
    "biz": "bk_biz_id",
    "bk_project": "id",
    "set": "bk_set_id",
    "module": "bk_module_id",
    "host": "bk_host_id",
    "process": "bk_process_id",
    "plat": "bk_cloud_id",
}
NAME_FIELDS = {
    "bk_biz_set_obj": "bk_biz_set_name",
    "biz": "bk_biz_name",
    "bk_project": "bk_project_name",
    "set": "bk_set_name",
    "module": "bk_module_name",
    "host": "bk_host_innerip",
    "process": "bk_process_name",
    "plat": "bk_cloud_name",
}


def id_field(bk_obj_id: str) -> str:
    """The field upstream keeps the id of an instance of ``bk_obj_id`` in."""
    return ID_FIELDS.get(bk_obj_id, "bk_inst_id")


def name_field(bk_obj_id: str) -> str:
    """The field upstream keeps the name of an instance of ``bk_obj_id`` in."""
    return NAME_FIELDS.get(bk_obj_id, "bk_inst_name")


# --- A model's associations with the instances at their ends ----------------------------------


async def require_model(db: Database, bk_obj_id: str) -> None:
    """Upstream's lookup of the model before it reads the model's instance associations: a
    model that does not exist answers 1199998 in its words."""
    if bk_obj_id not in await catalog.models_by_id(db, [bk_obj_id]):
        raise verbatim(ErrorCode.UNKNOWN, f"get model by objID failed, val: [{bk_obj_id}]")


@dataclass(frozen=True, slots=True)
class AssociationsWithInstances:
    associations: list[InstAssociation]
    # The instances at each end (None: not asked for, or none): model by model, each model's
    # in id order, each instance once.
    sources: list[Instance] | None
    targets: list[Instance] | None


async def associations_with_instances(
    db: Database,
    bk_obj_id: str,
    condition: conditions.Node,
    *,
    offset: int,
    limit: int,
    sort: Sequence[tuple[str, bool]] = (),
    sources: bool = False,
    targets: bool = False,
) -> AssociationsWithInstances:
    """A page of the associations whose source or target model is ``bk_obj_id`` (upstream
    keeps each under both) matching ``condition``, ordered by ``sort`` then id; with the
    instances at their sources and targets when asked for."""
    found = await associations.find_associations(
        db,
        associations.AssociationFilter(either_obj_id=bk_obj_id, condition=condition),
        offset=offset,
        limit=limit,
        sort=sort,
    )
    source_ends = [(a.bk_obj_id, a.bk_inst_id) for a in found] if sources else []
    target_ends = [(a.bk_asst_obj_id, a.bk_asst_inst_id) for a in found] if targets else []
    wanted = sorted({inst_id for _, inst_id in source_ends + target_ends})
    by_id = await instance_service.instances_by_id(db, wanted) if wanted else {}
    return AssociationsWithInstances(
        found, _at_ends(source_ends, by_id), _at_ends(target_ends, by_id)
    )


def _at_ends(ends: list[tuple[str, int]], by_id: dict[int, Instance]) -> list[Instance] | None:
    """Upstream reads each model's instances with one ``$in``: models in the order they first
    appear, each model's instances in id order, each once."""
    rank = {model: index for index, model in enumerate(dict.fromkeys(m for m, _ in ends))}
    found = [
        by_id[inst_id]
        for model, inst_id in set(ends)
        if inst_id in by_id and by_id[inst_id].bk_obj_id == model
    ]
    found.sort(key=lambda i: (rank[i.bk_obj_id], i.bk_inst_id))
    return found or None


# --- An instance's children, grouped by model --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Child:
    association_id: int
    bk_inst_id: int
    bk_inst_name: str


@dataclass(frozen=True, slots=True)
class ChildGroup:
    """The children of one model."""

    bk_obj_id: str
    bk_obj_name: str
    bk_obj_icon: str
    children: list[Child]


async def child_topology(
    db: Database, bk_obj_id: str, bk_inst_id: int, *, language: str = ZH
) -> list[ChildGroup]:
    """The targets of the associations whose source is the instance ``bk_inst_id`` of model
    ``bk_obj_id``, grouped by their model (in model id order), each group in association id
    order. Upstream's checks in its order: the model (1199011 ``bk_obj_id``), then the
    instance (1199011 naming upstream's id field of the model, ``bk_inst_id`` or
    ``bk_host_id``...). Built-in models carry upstream's names for them in ``language``."""
    if bk_obj_id not in await catalog.models_by_id(db, [bk_obj_id]):
        raise parameter_invalid("bk_obj_id")
    if bk_inst_id == 0:
        raise parameter_invalid(id_field(bk_obj_id))
    ia, inst, model = inst_associations.c, instances.c, models.c
    async with db.read() as conn:
        found = await conn.execute(
            select(inst.bk_inst_id).where(
                inst.bk_inst_id == bk_inst_id, inst.bk_obj_id == bk_obj_id
            )
        )
        if found.first() is None:
            raise parameter_invalid(id_field(bk_obj_id))
        rows = await conn.execute(
            select(
                ia.id,
                ia.bk_asst_inst_id,
                inst.bk_inst_name,
                model.bk_obj_id,
                model.bk_obj_name,
                model.bk_obj_icon,
            )
            .select_from(
                inst_associations.join(instances, inst.bk_inst_id == ia.bk_asst_inst_id).join(
                    models, model.bk_obj_id == ia.bk_asst_obj_id
                )
            )
            .where(ia.bk_obj_id == bk_obj_id, ia.bk_inst_id == bk_inst_id)
            .order_by(model.id, ia.id)
        )
        found_rows = await build_all(rows, tuple)
    groups: dict[str, ChildGroup] = {}
    for association_id, target_id, target_name, target_obj_id, obj_name, obj_icon in found_rows:
        group = groups.get(target_obj_id)
        if group is None:
            built_in = catalog.BUILT_IN_MODEL_NAMES.get(language, catalog.BUILT_IN_MODEL_NAMES[ZH])
            name = built_in.get(target_obj_id, obj_name)
            group = groups[target_obj_id] = ChildGroup(target_obj_id, name, obj_icon, [])
        group.children.append(Child(association_id, target_id, target_name))
    return list(groups.values())


# --- The instances associated with one instance -----------------------------------------------


@dataclass(frozen=True, slots=True)
class AssociatedInstances:
    # How many associations match (before the page), and the instances of the page's
    # associations; (0, None) when the page holds none, as upstream answers.
    count: int
    instances: list[Instance] | None


async def associated_instances(
    db: Database,
    bk_obj_id: str,
    bk_inst_id: int,
    association_obj_id: str,
    *,
    as_target: bool,
    offset: int,
    limit: int | None,
    sort: Sequence[tuple[str, bool]] = (),
) -> AssociatedInstances:
    """The instances of ``association_obj_id`` associated with the instance ``bk_inst_id`` of
    ``bk_obj_id``: as its targets, or as its sources when ``as_target`` (the instance is the
    target), through a page of those associations; in id order, each once. Models that do
    not exist have no associations (upstream reads an empty table)."""
    if as_target:
        wanted = {
            "bk_asst_obj_id": bk_obj_id,
            "bk_asst_inst_id": bk_inst_id,
            "bk_obj_id": association_obj_id,
        }
    else:
        wanted = {
            "bk_obj_id": bk_obj_id,
            "bk_inst_id": bk_inst_id,
            "bk_asst_obj_id": association_obj_id,
        }
    # A condition rather than the filter's model fields: those would refuse unknown models.
    page = await associations.list_associations(
        db,
        associations.AssociationFilter(
            condition=conditions.parse(wanted, associations.CONDITION_FIELDS)
        ),
        offset=offset,
        limit=limit,
        sort=sort,
    )
    if not page.items:
        return AssociatedInstances(0, None)
    other_ids = {a.bk_inst_id if as_target else a.bk_asst_inst_id for a in page.items}
    by_id = await instance_service.instances_by_id(db, sorted(other_ids))
    found = sorted(
        (i for i in by_id.values() if i.bk_obj_id == association_obj_id),
        key=lambda i: i.bk_inst_id,
    )
    return AssociatedInstances(page.total_count, found)
