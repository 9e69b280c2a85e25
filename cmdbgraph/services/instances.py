"""Instances of models: create in batches, list, fetch by id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, union
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import inst_associations, instances, models, text_length
from cmdbgraph.services import catalog, conditions, paging, permissions
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import CmdbError, ErrorCode, exceeds_limit, parameter_invalid
from cmdbgraph.services.limits import Limits
from cmdbgraph.services.records import Instance, Page, build_all, field_names

_COLUMNS = [instances.c[name] for name in field_names(Instance)]
DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class NewInstance:
    bk_inst_name: str
    attributes: dict = field(default_factory=dict)


async def create_instances(
    db: Database,
    caller: Caller,
    bk_obj_id: str,
    new: Sequence[NewInstance],
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Instance]:
    """Create instances of one model, in order, all or none. Names are unique per model."""
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    if not new:
        raise CmdbError(ErrorCode.EMPTY, ("instances",))
    if len(new) > limits.max_create:
        raise exceeds_limit("instances", limits.max_create)
    longest = text_length(instances.c.bk_inst_name)
    names = [catalog.check_text("bk_inst_name", item.bk_inst_name, longest) for item in new]
    if len(set(names)) != len(names):
        raise CmdbError(ErrorCode.DUPLICATED, ("bk_inst_name",))
    now = datetime.now(UTC)
    rows = [
        {
            "bk_obj_id": bk_obj_id,
            "bk_inst_name": name,
            "attributes": {**item.attributes, "bk_inst_name": name},
            "bk_supplier_account": caller.supplier_account,
            "creator": caller.username,
            "create_time": now,
            "last_time": now,
        }
        for name, item in zip(names, new, strict=True)
    ]
    try:
        async with db.write() as conn:
            model = (
                await conn.execute(select(models.c.id).where(models.c.bk_obj_id == bk_obj_id))
            ).first()
            if model is None:
                raise parameter_invalid("bk_obj_id")
            await permissions.authorize_new_instances(conn, caller, bk_obj_id)
            result = await conn.execute(
                insert(instances).returning(*_COLUMNS, sort_by_parameter_order=True), rows
            )
            return [Instance.from_row(row) for row in result]
    except IntegrityError:
        raise CmdbError(ErrorCode.DUPLICATED, ("bk_inst_name",)) from None


async def ids_by_name(db: Database, bk_obj_id: str, names: Sequence[str]) -> dict[str, int]:
    """Instance ids of model ``bk_obj_id`` by name (names are unique per model)."""
    async with db.read() as conn:
        rows = await conn.execute(
            select(instances.c.bk_inst_name, instances.c.bk_inst_id).where(
                instances.c.bk_obj_id == bk_obj_id, instances.c.bk_inst_name.in_(list(names))
            )
        )
        return {name: inst_id for name, inst_id in rows}


async def instances_by_id(db: Database, inst_ids: Sequence[int]) -> dict[int, Instance]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(*_COLUMNS).where(instances.c.bk_inst_id.in_(list(inst_ids)))
        )
        return {row.bk_inst_id: Instance.from_row(row) for row in rows}


@dataclass(frozen=True, slots=True)
class InstanceFilter:
    bk_obj_id: str | None = None
    name_contains: str | None = None
    bk_inst_ids: Sequence[int] | None = None
    # Upstream's condition (services/conditions.py) on the columns and the attributes.
    condition: conditions.Node | None = None
    # A query of instance ids the instances must be among.
    among: Any = None


SORTABLE_FIELDS = ("bk_inst_id", "bk_inst_name", "create_time", "last_time")
# Upstream's built-in models, whose instances its common instance calls refuse (1199084).
INNER_MODELS = ("biz_set", "biz", "project", "set", "module", "process", "host", "plat")

# Where a condition's names point (services/conditions.py): these columns, and every other
# name into the attributes (as upstream keeps them all in one document).
CONDITION_FIELDS = conditions.Fields(
    columns={
        "bk_inst_id": (instances.c.bk_inst_id, conditions.Kind.INT),
        "bk_obj_id": (instances.c.bk_obj_id, conditions.Kind.STR),
        "bk_inst_name": (instances.c.bk_inst_name, conditions.Kind.STR),
        "bk_supplier_account": (instances.c.bk_supplier_account, conditions.Kind.STR),
        "creator": (instances.c.creator, conditions.Kind.STR),
        "create_time": (instances.c.create_time, conditions.Kind.TIME),
        "last_time": (instances.c.last_time, conditions.Kind.TIME),
    },
    attributes=instances.c.attributes,
)


def refuse_inner_model(bk_obj_id: str) -> None:
    """Upstream's common instance calls do not serve its built-in models (hosts, business...):
    1199084."""
    if bk_obj_id in INNER_MODELS:
        raise CmdbError(ErrorCode.INNER_MODEL_FORBIDDEN)


def _where(flt: InstanceFilter, dialect: str) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if flt.bk_obj_id is not None:
        where.append(instances.c.bk_obj_id == flt.bk_obj_id)
    if flt.name_contains:
        where.append(instances.c.bk_inst_name.contains(flt.name_contains, autoescape=True))
    if flt.bk_inst_ids is not None:
        where.append(instances.c.bk_inst_id.in_(list(flt.bk_inst_ids)))
    if flt.condition is not None:
        where.append(conditions.compile_condition(flt.condition, CONDITION_FIELDS, dialect))
    if flt.among is not None:
        where.append(instances.c.bk_inst_id.in_(flt.among))
    return where


def _order_by(sort: str | None):
    if not sort:
        return [instances.c.bk_inst_id]
    clauses = []
    for part in sort.split(","):
        descending = part.startswith("-")
        name = part.lstrip("-").strip()
        if name not in SORTABLE_FIELDS:
            raise parameter_invalid("sort")
        column = instances.c[name]
        clauses.append(column.desc() if descending else column.asc())
    return [*clauses, instances.c.bk_inst_id]


async def list_instances(
    db: Database,
    flt: InstanceFilter,
    *,
    offset: int = 0,
    limit: int = 50,
    sort: str | None = None,
) -> Page[Instance]:
    """A page of instances matching ``flt``; ``sort`` is e.g. ``"-bk_inst_name"``."""
    where = _where(flt, db.dialect)
    async with db.read() as conn:
        total = await _count(conn, where)
        if total == 0:
            await catalog.require_models(conn, {"bk_obj_id": flt.bk_obj_id})
        rows = await conn.execute(
            select(*_COLUMNS).where(*where).order_by(*_order_by(sort)).offset(offset).limit(limit)
        )
        return Page(total, await build_all(rows, Instance.from_row))


LIST = "instance"  # the cursors of instance lists


async def instance_slice(
    db: Database, flt: InstanceFilter, win: paging.Window
) -> paging.Slice[Instance]:
    """The instances matching ``flt`` in the window ``win`` of the list ordered by id."""
    where = _where(flt, db.dialect)
    async with db.read() as conn:
        found = await paging.keyset(
            db, select(*_COLUMNS), instances.c.bk_inst_id, where, win, Instance.from_row, conn=conn
        )
        if not found.items and win.after is None and win.before is None:
            await catalog.require_models(conn, {"bk_obj_id": flt.bk_obj_id})
        return found


async def count_instances(db: Database, flt: InstanceFilter) -> int:
    """How many instances match ``flt``."""
    async with db.read() as conn:
        return await _count(conn, _where(flt, db.dialect))


async def _count(conn: AsyncConnection, where: list) -> int:
    return (
        await conn.execute(select(func.count()).select_from(instances).where(*where))
    ).scalar_one()


# --- Instances through their associated instances (upstream's search_inst) ------------------


@dataclass(frozen=True, slots=True)
class ConditionItem:
    """Upstream's ``{field, operator, value}``."""

    field: str
    operator: str
    value: object


# Upstream's SpecialCharChange: these characters of a $regex on the model's own fields are
# escaped, so that the value matches as a plain substring ("+" is not among them).
_SPECIAL = set(".()\\|[]*{}^$?")


def _literal(value: str) -> str:
    return "".join("\\" + char if char in _SPECIAL else char for char in value)


def _own_condition(items: Sequence[ConditionItem]) -> dict:
    """Upstream's translation of the conditions on the model's own fields."""
    built: dict[str, object] = {}
    for item in items:
        op, value = item.operator, item.value
        if op == "$eq":
            built[item.field] = {"$eq": value} if isinstance(value, str) else value
        elif op in ("$regex", "$multilike"):
            built[item.field] = {op: _literal(value) if isinstance(value, str) else value}
        elif op in ("$lt", "$lte", "$gt", "$gte"):
            merged = built.get(item.field)
            if isinstance(merged, dict):
                merged[op] = value
            else:
                built[item.field] = {op: value}
        else:
            built[item.field] = {op: value}
    return built


def _other_condition(items: Sequence[ConditionItem]) -> dict:
    """Upstream's translation of the conditions on an associated model's fields."""
    return {
        item.field: item.value if item.operator == "$eq" else {item.operator: item.value}
        for item in items
    }


async def find_through_associations(
    db: Database,
    bk_obj_id: str,
    condition: Mapping[str, Sequence[ConditionItem]],
    *,
    time: conditions.Node | None = None,
    offset: int = 0,
    limit: int = 50,
    sort: str | None = None,
) -> Page[Instance] | None:
    """Upstream's search_inst (``FindInstByAssociationInst``): instances of ``bk_obj_id``
    matching ``condition[bk_obj_id]``, restricted, for every other model of ``condition``
    with matching instances, to the sources of associations towards them (the union over
    those models). None where upstream answers ``info: null``: conditions given, none on the
    model itself, and no association found. Raises ``conditions.ConditionError``."""
    own = conditions.parse(_own_condition(condition.get(bk_obj_id, ())), CONDITION_FIELDS)
    ia = inst_associations.c
    async with db.read() as conn:
        sources = []
        for other, items in condition.items():
            if other == bk_obj_id:
                continue
            tree = conditions.parse(_other_condition(items), CONDITION_FIELDS)
            matched = select(instances.c.bk_inst_id).where(
                instances.c.bk_obj_id == other,
                conditions.compile_condition(tree, CONDITION_FIELDS, db.dialect),
            )
            if not (await conn.execute(select(matched.exists()))).scalar():
                continue  # upstream: a model without a match restricts nothing
            sources.append(
                select(ia.bk_inst_id).where(
                    ia.bk_obj_id == bk_obj_id,
                    ia.bk_asst_obj_id == other,
                    ia.bk_asst_inst_id.in_(matched),
                )
            )
        restricted = None
        if sources:
            either = union(*sources) if len(sources) > 1 else sources[0]
            if (await conn.execute(select(either.exists()))).scalar():
                restricted = either
        if restricted is None and condition and bk_obj_id not in condition:
            return None
    flt = InstanceFilter(
        bk_obj_id=bk_obj_id, condition=conditions.both(own, time), among=restricted
    )
    return await list_instances(db, flt, offset=offset, limit=limit, sort=sort)
