"""The set-based statements of the hot path, in the shape each database runs well at any size.

Each list is bound as ONE parameter (a JSON array on SQLite, arrays or JSON on PostgreSQL)
instead of one parameter per value: the statement text is the same for every batch, so it is
prepared and cached once, and binding 200 rows costs one encode instead of 2,000 parameter
conversions. The inserts run as ``INSERT ... SELECT`` over that one parameter.

On PostgreSQL every id is looked up on its own with ``JOIN LATERAL (... OFFSET 0)``: with
``IN``/``= ANY`` lists, a table that is filling up faster than autovacuum refreshes its
statistics gets planned as tiny, scanned sequentially, and a 200-item batch goes from a few
milliseconds to hundreds. ``OFFSET 0`` keeps each lookup a subquery of its own, run once per
id (without it the planner may turn the lateral join back into a hash join over the whole
table), and, unlike the ``LIMIT 1`` used before, does not make a sequential scan look cheap
(a scan expected to stop at its first match, which it never finds). The lookups are planned
generically (``generic_plans``): with the values in view, a model association missing from the
statistics looks rare, and an index on the model association alone looks as good as one on the
instance. Then every lookup is an index lookup by instance, whatever the statistics say, which
``tests/test_plans.py`` checks by counting the rows read.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Collection, Sequence
from datetime import datetime

import orjson
from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncConnection

_SQLITE_INSTANCES = text(
    "SELECT bk_inst_id, bk_obj_id, bk_inst_name FROM instances "
    "WHERE bk_inst_id IN (SELECT value FROM json_each(:ids))"
)
_PG_INSTANCES = text(
    "SELECT i.bk_inst_id, i.bk_obj_id, i.bk_inst_name "
    "FROM unnest(CAST(:ids AS bigint[])) AS k(id) "
    "JOIN LATERAL (SELECT bk_inst_id, bk_obj_id, bk_inst_name FROM instances "
    "WHERE bk_inst_id = k.id OFFSET 0) AS i ON true"
)

# Stored associations of one model association that a batch could collide with. SQLite: each id
# of the JSON array looked up on its own: ``CROSS JOIN`` makes the array the outer loop (SQLite
# keeps that order), so every lookup is an index search on the model association and the id.
# The targets name their index: without statistics (the service never runs ANALYZE), the
# planner preferred the unique index on (model association, source, target), covering, with
# its model association alone, to the index on (model association, target): every row of the
# model association read by every batch (2.9 ms at 66,600 rows, growing with it).
_SQLITE_BY_SOURCE = (
    "SELECT a.bk_inst_id, a.bk_asst_inst_id FROM json_each(:sources) AS k "
    "CROSS JOIN inst_associations AS a "
    "WHERE a.bk_obj_asst_id = :asst AND a.bk_inst_id = k.value"
)
_SQLITE_BY_TARGET = (
    "SELECT a.bk_inst_id, a.bk_asst_inst_id FROM json_each(:targets) AS k "
    "CROSS JOIN inst_associations AS a INDEXED BY ix_inst_associations_target "
    "WHERE a.bk_obj_asst_id = :asst AND a.bk_asst_inst_id = k.value"
)
_SQLITE_BY_PAIR = (
    "SELECT a.bk_inst_id, a.bk_asst_inst_id FROM json_each(:sources) AS k "
    "CROSS JOIN inst_associations AS a "
    "WHERE a.bk_obj_asst_id = :asst AND a.bk_inst_id = k.value "
    "AND a.bk_asst_inst_id IN (SELECT value FROM json_each(:targets))"
)
_SQLITE_STORED = {
    "1:1": text(f"{_SQLITE_BY_SOURCE} UNION {_SQLITE_BY_TARGET}"),
    "1:n": text(_SQLITE_BY_TARGET),
    "n:n": text(_SQLITE_BY_PAIR),
}

# Under 1:1 a source has at most one association, and under 1:1 and 1:n a target has at most
# one source, and under n:n the exact pair is unique: each lookup finds one row at most.
_PG_BY_SOURCE = (
    "SELECT a.bk_inst_id, a.bk_asst_inst_id FROM unnest(CAST(:sources AS bigint[])) AS k(id) "
    "JOIN LATERAL (SELECT bk_inst_id, bk_asst_inst_id FROM inst_associations "
    "WHERE bk_obj_asst_id = :asst AND bk_inst_id = k.id OFFSET 0) AS a ON true"
)
_PG_BY_TARGET = (
    "SELECT a.bk_inst_id, a.bk_asst_inst_id FROM unnest(CAST(:targets AS bigint[])) AS k(id) "
    "JOIN LATERAL (SELECT bk_inst_id, bk_asst_inst_id FROM inst_associations "
    "WHERE bk_obj_asst_id = :asst AND bk_asst_inst_id = k.id OFFSET 0) AS a ON true"
)
_PG_BY_PAIR = (
    "SELECT a.bk_inst_id, a.bk_asst_inst_id "
    "FROM unnest(CAST(:sources AS bigint[]), CAST(:targets AS bigint[])) AS k(src, dest) "
    "JOIN LATERAL (SELECT bk_inst_id, bk_asst_inst_id FROM inst_associations "
    "WHERE bk_obj_asst_id = :asst AND bk_inst_id = k.src AND bk_asst_inst_id = k.dest "
    "OFFSET 0) AS a ON true"
)
_PG_STORED = {
    "1:1": text(f"{_PG_BY_SOURCE} UNION {_PG_BY_TARGET}"),
    "1:n": text(_PG_BY_TARGET),
    "n:n": text(_PG_BY_PAIR),
}


def _is_sqlite(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "sqlite"


async def generic_plans(conn: AsyncConnection) -> None:
    """PostgreSQL: plan the rest of the transaction's statements generically, from the tables'
    statistics and not from the values bound. Call it before the lookups of a batch.

    The lookups: with the values in view, a model association created or filled since the
    table was last analyzed looks rare (no rows in the statistics), and the planner may look
    a source up through an index on (bk_obj_asst_id, bk_asst_inst_id), reading every row of
    the model association for each of the 200 sources: 70 ms instead of 0.3 ms with 20,000
    rows, and growing with the model association (an import into a new one would cost the
    square of its size). A generic plan takes any model association as typical and looks up
    by the instance. The inserts: their foreign-key checks are statements too, one per row
    and key, planned anew for each row unless plans are reused: 14 ms of a 200-row insert,
    7 ms with generic plans (both measured in benchmarks/README.md). Connections otherwise
    plan with the values (``force_custom_plan``, ``cmdbgraph.db.engine``)."""
    if not _is_sqlite(conn):
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")


async def instances_by_ids(conn: AsyncConnection, ids: Collection[int]) -> Result:
    """Rows ``(bk_inst_id, bk_obj_id, bk_inst_name)`` of the instances among ``ids``."""
    if _is_sqlite(conn):
        return await conn.execute(_SQLITE_INSTANCES, {"ids": orjson.dumps(list(ids)).decode()})
    return await conn.execute(_PG_INSTANCES, {"ids": list(ids)})


async def stored_associations(
    conn: AsyncConnection,
    bk_obj_asst_id: str,
    mapping: str,
    pairs: Sequence[tuple[int, int]],
) -> Result:
    """Rows ``(bk_inst_id, bk_asst_inst_id)`` of stored associations of ``bk_obj_asst_id`` a
    batch of ``pairs`` must be checked against: any association of its sources (1:1) or of
    its targets (1:1, 1:n), and the exact pairs (n:n; possibly a superset on SQLite)."""
    sources: str | list[int]
    targets: str | list[int]
    if _is_sqlite(conn):
        sources = orjson.dumps(sorted({s for s, _ in pairs})).decode()
        targets = orjson.dumps(sorted({t for _, t in pairs})).decode()
        statement = _SQLITE_STORED[mapping]
    elif mapping == "n:n":
        unique = sorted(set(pairs))
        sources = [s for s, _ in unique]
        targets = [t for _, t in unique]
        statement = _PG_STORED[mapping]
    else:
        sources = sorted({s for s, _ in pairs})
        targets = sorted({t for _, t in pairs})
        statement = _PG_STORED[mapping]
    parameters = {"asst": bk_obj_asst_id, "targets": targets}
    if mapping != "1:n":
        parameters["sources"] = sources
    return await conn.execute(statement, parameters)


_ASSOCIATION_COLUMNS = (
    "bk_obj_asst_id, bk_asst_id, bk_obj_id, bk_inst_id, bk_asst_obj_id, bk_asst_inst_id, "
    "mapping, bk_supplier_account, bk_biz_id, creator, create_time"
)
_SQLITE_INSERT_ASSOCIATIONS = text(
    f"INSERT INTO inst_associations ({_ASSOCIATION_COLUMNS}) "
    "SELECT :asst, :kind, :obj, json_extract(value, '$[0]'), :asst_obj, "
    "json_extract(value, '$[1]'), :mapping, :supplier, 0, :creator, :now "
    "FROM json_each(:pairs) "
    "RETURNING id, bk_inst_id, bk_asst_inst_id"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))
_PG_INSERT_ASSOCIATIONS = text(
    f"INSERT INTO inst_associations ({_ASSOCIATION_COLUMNS}) "
    "SELECT :asst, :kind, :obj, k.src, :asst_obj, k.dest, :mapping, :supplier, 0, :creator, :now "
    "FROM unnest(CAST(:sources AS bigint[]), CAST(:targets AS bigint[])) AS k(src, dest) "
    "RETURNING id, bk_inst_id, bk_asst_inst_id"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))


async def insert_associations(
    conn: AsyncConnection,
    *,
    bk_obj_asst_id: str,
    bk_asst_id: str,
    bk_obj_id: str,
    bk_asst_obj_id: str,
    mapping: str,
    supplier_account: str,
    creator: str,
    now: datetime,
    pairs: Sequence[tuple[int, int]],
) -> dict[tuple[int, int], int]:
    """Insert one association per (source, target) pair; returns the new id of each pair
    (pairs are unique within a model association, so they name their rows)."""
    parameters: dict[str, object] = {
        "asst": bk_obj_asst_id,
        "kind": bk_asst_id,
        "obj": bk_obj_id,
        "asst_obj": bk_asst_obj_id,
        "mapping": mapping,
        "supplier": supplier_account,
        "creator": creator,
        "now": now,
    }
    if _is_sqlite(conn):
        parameters["pairs"] = orjson.dumps([list(p) for p in pairs]).decode()
        statement = _SQLITE_INSERT_ASSOCIATIONS
    else:
        parameters["sources"] = [s for s, _ in pairs]
        parameters["targets"] = [t for _, t in pairs]
        statement = _PG_INSERT_ASSOCIATIONS
    result = await conn.execute(statement, parameters)
    return {(src, dest): new_id for new_id, src, dest in result}


_AUDIT_COLUMNS = (
    "audit_type, resource_type, action, resource_id, resource_name, operation_detail, "
    "bk_username, bk_supplier_account, app_code, request_id, operation_time"
)
_SQLITE_INSERT_AUDIT = text(
    f"INSERT INTO audit_entries ({_AUDIT_COLUMNS}) "
    "SELECT :audit_type, :resource_type, :action, json_extract(value, '$[0]'), "
    "json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    ":username, :supplier, :app_code, :request_id, :now "
    "FROM json_each(:rows)"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))
_PG_INSERT_AUDIT = text(
    f"INSERT INTO audit_entries ({_AUDIT_COLUMNS}) "
    "SELECT :audit_type, :resource_type, :action, (r->>0)::bigint, r->>1, r->2, "
    ":username, :supplier, :app_code, :request_id, :now "
    "FROM json_array_elements(CAST(:rows AS json)) AS r"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))


async def insert_audit_entries(
    conn: AsyncConnection,
    *,
    audit_type: str,
    resource_type: str,
    action: str,
    username: str,
    supplier_account: str,
    app_code: str,
    request_id: str,
    now: datetime,
    entries: Sequence[tuple[int, str, dict]],
) -> None:
    """Insert one audit entry per (resource id, resource name, operation detail)."""
    if not entries:
        return
    await conn.execute(
        _SQLITE_INSERT_AUDIT if _is_sqlite(conn) else _PG_INSERT_AUDIT,
        {
            "audit_type": audit_type,
            "resource_type": resource_type,
            "action": action,
            "username": username,
            "supplier": supplier_account,
            "app_code": app_code,
            "request_id": request_id,
            "now": now,
            "rows": orjson.dumps([list(entry) for entry in entries]).decode(),
        },
    )


_EVENT_COLUMNS = "resource, event_type, resource_id, bk_obj_id, bk_asst_obj_id, detail, create_time"
# Events go in with plain parameters, each detail as the JSON text given: no JSON is taken
# apart or put together again in the database (that was most of what a batch's events cost).
# PostgreSQL: one statement over arrays, the details bound as json[], the time the statement's
# own. SQLite: one multi-row VALUES, its text made once per number of rows, run as the
# driver's own statement (through SQLAlchemy's parameter handling, 800 parameters cost more
# than SQLite's work); at most _SQLITE_EVENT_ROWS rows a statement: 4 parameters each, within
# SQLite's oldest limit of 999.
_PG_INSERT_EVENTS = text(
    f"INSERT INTO events ({_EVENT_COLUMNS}) "
    "SELECT :resource, :event_type, e.id, e.obj, e.asst_obj, e.detail, statement_timestamp() "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:objs AS text[]), CAST(:asst_objs AS text[]), "
    "CAST(:details AS json[])) AS e(id, obj, asst_obj, detail)"
)
_SQLITE_EVENT_ROWS = 200
_TIMESTAMP = DateTime(timezone=True)


@functools.lru_cache(maxsize=_SQLITE_EVENT_ROWS)
def _sqlite_insert_events(count: int) -> str:
    """The statement inserting ``count`` events: the shared values first, then each row's."""
    return (
        f"INSERT INTO events ({_EVENT_COLUMNS}) "
        "SELECT ?, ?, column1, column2, column3, column4, ? "
        f"FROM (VALUES {', '.join(['(?, ?, ?, ?)'] * count)})"
    )


async def insert_events(
    conn: AsyncConnection,
    *,
    resource: str,
    event_type: str,
    now: datetime,
    rows: Sequence[tuple[int, str, str, str]],
) -> None:
    """Insert one event per (resource id, model, other model, detail as JSON text), in the
    order given (ids ascending), after the events lock was taken (``Database.lock_events``).

    Their time ascends with their ids, as ``events.position_at`` expects. On SQLite it is
    ``now``, which the caller took in its write transaction (writers take turns); on
    PostgreSQL, where writers take turns only from the events lock on, the time of this
    statement, on the server's clock (the same for every writing process)."""
    if not rows:
        return
    if not _is_sqlite(conn):
        await conn.execute(
            _PG_INSERT_EVENTS,
            {
                "resource": resource,
                "event_type": event_type,
                "ids": [row[0] for row in rows],
                "objs": [row[1] for row in rows],
                "asst_objs": [row[2] for row in rows],
                "details": [row[3] for row in rows],
            },
        )
        return
    # The driver's statement binds values as they are: the timestamp as SQLAlchemy stores it.
    to_sqlite = _TIMESTAMP.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    stored_now = to_sqlite(now) if to_sqlite is not None else now
    for start in range(0, len(rows), _SQLITE_EVENT_ROWS):
        chunk = rows[start : start + _SQLITE_EVENT_ROWS]
        await conn.exec_driver_sql(
            _sqlite_insert_events(len(chunk)),
            (resource, event_type, stored_now, *itertools.chain.from_iterable(chunk)),
        )
