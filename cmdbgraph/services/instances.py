"""Instances of models: create in batches, list, fetch by id."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import and_, false, func, insert, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import instances, models, text_length
from cmdbgraph.services import catalog, conditions, permissions
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
            await permissions.authorize_models(conn, caller, [bk_obj_id])
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
    # Field -> value (equality) or list of values (any of), on the columns or the attributes.
    fields: dict[str, object] = field(default_factory=dict)


SORTABLE_FIELDS = ("bk_inst_id", "bk_inst_name", "create_time", "last_time")


_COLUMN_FIELDS = {
    "bk_inst_id": int,
    "bk_inst_name": str,
    "bk_obj_id": str,
    "bk_supplier_account": str,
}
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
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# JSON type names SQLite's json_type() reports for a Python value.
_SQLITE_JSON_TYPES = {str: "text", int: "integer", float: "real"}


def _field_condition(name: str, value: object, *, sqlite: bool):
    """``name`` equals ``value`` (or, for a list, one of them), comparing typed values: a
    value of another type than the stored one matches nothing, on both databases."""
    values = value if isinstance(value, list) else [value]
    if name in _COLUMN_FIELDS:
        wanted = _COLUMN_FIELDS[name]
        typed = [v for v in values if type(v) is wanted]
        return instances.c[name].in_(typed) if typed else false()
    if not _ATTRIBUTE_NAME.match(name):
        raise parameter_invalid(name)
    if not sqlite:
        attributes = type_coerce(instances.c.attributes, JSONB)
        return or_(*(attributes.contains({name: v}) for v in values))
    path = f"$.{name}"
    matches = []
    for v in values:
        json_type = (
            ("true" if v else "false") if isinstance(v, bool) else _SQLITE_JSON_TYPES[type(v)]
        )
        condition = func.json_type(instances.c.attributes, path) == json_type
        if not isinstance(v, bool):
            condition = and_(condition, func.json_extract(instances.c.attributes, path) == v)
        matches.append(condition)
    return or_(*matches)


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
    conditions = [
        _field_condition(name, value, sqlite=db.is_sqlite) for name, value in flt.fields.items()
    ]
    if flt.bk_obj_id is not None:
        conditions.append(instances.c.bk_obj_id == flt.bk_obj_id)
    if flt.name_contains:
        conditions.append(instances.c.bk_inst_name.contains(flt.name_contains, autoescape=True))
    if flt.bk_inst_ids is not None:
        conditions.append(instances.c.bk_inst_id.in_(list(flt.bk_inst_ids)))
    async with db.read() as conn:
        total = (
            await conn.execute(select(func.count()).select_from(instances).where(*conditions))
        ).scalar_one()
        if total == 0:
            await catalog.require_models(conn, {"bk_obj_id": flt.bk_obj_id})
        rows = await conn.execute(
            select(*_COLUMNS)
            .where(*conditions)
            .order_by(*_order_by(sort))
            .offset(offset)
            .limit(limit)
        )
        return Page(total, await build_all(rows, Instance.from_row))
