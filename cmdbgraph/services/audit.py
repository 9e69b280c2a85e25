"""Audit entries: one per created or deleted association, written in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db import bulk
from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import audit_entries, instances
from cmdbgraph.services import paging
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.records import AuditEntry, InstAssociation, Page, build_all, field_names

_COLUMNS = [audit_entries.c[name] for name in field_names(AuditEntry)]


def association_detail(association: InstAssociation, names: dict[int, str]) -> dict:
    """Upstream's ``operation_detail`` of an instance association."""
    return {
        "asst_id": association.bk_obj_asst_id,
        "asst_kind": association.bk_asst_id,
        "src_obj_id": association.bk_obj_id,
        "dest_obj_id": association.bk_asst_obj_id,
        "dest_inst_id": association.bk_asst_inst_id,
        "dest_inst_name": names.get(association.bk_asst_inst_id, ""),
        "inst_asst_id": association.id,
    }


async def record_associations(
    conn: AsyncConnection,
    caller: Caller,
    action: str,
    associations: Sequence[InstAssociation],
    names: dict[int, str],
    *,
    now: datetime,
) -> None:
    """One audit entry per created or deleted association, in upstream's shape, in one
    statement; the resource is the source instance."""
    await bulk.insert_audit_entries(
        conn,
        audit_type="model_instance",
        resource_type="instance_association",
        action=action,
        username=caller.username,
        supplier_account=caller.supplier_account,
        app_code=caller.app_code,
        request_id=caller.request_id,
        now=now,
        entries=[
            (a.bk_inst_id, names.get(a.bk_inst_id, ""), association_detail(a, names))
            for a in associations
        ],
    )


async def instance_names(conn: AsyncConnection, inst_ids: Iterable[int]) -> dict[int, str]:
    rows = await conn.execute(
        select(instances.c.bk_inst_id, instances.c.bk_inst_name).where(
            instances.c.bk_inst_id.in_(list(inst_ids))
        )
    )
    return {inst_id: name for inst_id, name in rows}


@dataclass(frozen=True, slots=True)
class AuditFilter:
    resource_type: str | None = None
    action: str | None = None
    resource_id: int | None = None
    bk_username: str | None = None
    request_id: str | None = None


def _audit_conditions(flt: AuditFilter) -> list:
    return [
        audit_entries.c[name] == value
        for name, value in (
            ("resource_type", flt.resource_type),
            ("action", flt.action),
            ("resource_id", flt.resource_id),
            ("bk_username", flt.bk_username),
            ("request_id", flt.request_id),
        )
        if value is not None
    ]


async def list_audit_entries(
    db: Database, flt: AuditFilter, *, offset: int = 0, limit: int = 50
) -> Page[AuditEntry]:
    conditions = _audit_conditions(flt)
    async with db.read() as conn:
        total = await _count(conn, conditions)
        rows = await conn.execute(
            select(*_COLUMNS)
            .where(*conditions)
            .order_by(audit_entries.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return Page(total, await build_all(rows, AuditEntry.from_row))


LIST = "audit"  # the cursors of audit lists


async def audit_slice(
    db: Database, flt: AuditFilter, win: paging.Window
) -> paging.Slice[AuditEntry]:
    """The entries matching ``flt`` in the window ``win`` of the list, newest first."""
    return await paging.keyset(
        db,
        select(*_COLUMNS),
        audit_entries.c.id,
        _audit_conditions(flt),
        win,
        AuditEntry.from_row,
        descending=True,
    )


async def count_audit_entries(db: Database, flt: AuditFilter) -> int:
    async with db.read() as conn:
        return await _count(conn, _audit_conditions(flt))


async def _count(conn: AsyncConnection, conditions: list) -> int:
    query = select(func.count()).select_from(audit_entries).where(*conditions)
    return (await conn.execute(query)).scalar_one()


@dataclass(frozen=True, slots=True)
class CatalogResource:
    """What the audit calls a kind of catalog row: its audit and resource types, and the
    field that names a row."""

    audit_type: str
    resource_type: str
    name_field: str


async def record_catalog_change(
    conn: AsyncConnection,
    caller: Caller,
    resource: CatalogResource,
    action: str,
    before: Any | None,
    after: Any | None,
) -> None:
    """One audit entry for a change of a catalog row (``before`` and ``after`` are its
    records, None where it did not exist), in upstream's shape: the data before and after."""
    subject: Any = after if after is not None else before
    await bulk.insert_audit_entries(
        conn,
        audit_type=resource.audit_type,
        resource_type=resource.resource_type,
        action=action,
        username=caller.username,
        supplier_account=caller.supplier_account,
        app_code=caller.app_code,
        request_id=caller.request_id,
        now=datetime.now(UTC),
        entries=[
            (
                subject.id,
                getattr(subject, resource.name_field),
                {
                    "details": {
                        "pre_data": None if before is None else asdict(before),
                        "cur_data": None if after is None else asdict(after),
                    }
                },
            )
        ],
    )
