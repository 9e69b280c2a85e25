"""The methods measured, one batch at a time: the raw SQLite limit, the service in-process,
REST and GraphQL over HTTP on a real server process, and upstream's per-item algorithm."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import bindparam, insert, select

from benchmarks.preparation import CALLER, DEST_OBJ, OBJ_ASST_ID, SRC_OBJ
from cmdbgraph.db import engine
from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import audit_entries, inst_associations, instances
from cmdbgraph.services import associations, audit, events, limits, permissions
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.records import InstAssociation
from tests.support.calls import ESB_PATH, batch_input, demo_headers, rest_body
from tests.support.servers import ServerFailed, live_server

ROOT = Path(__file__).resolve().parents[1]

# The same mutation with only the counts and upstream's two maps: about what REST returns.
MINIMAL_MUTATION = """
mutation Batch($input: BatchCreateInstAssociationsInput!) {
  batchCreateInstAssociations(input: $input) {
    __typename
    ... on BatchCreateInstAssociationsPayload {
      createdCount failedCount written successCreated errorMsg
    }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
  }
}
"""

# Methods served by the server process, interleaved batch by batch so that they see tables of
# the same size; each uses its own slice of the pairs.
HTTP_SERIES = ("rest", "graphql", "graphql-min")


# ---------------------------------------------------------------------------------------------
# 1. The raw limit: stdlib sqlite3, set-based, one transaction


def found_instances(
    rows: Iterable, src_obj: str, dest_obj: str
) -> tuple[dict[int, str], set[int], set[int]]:
    """From rows (id, model, name) of the referenced instances: their names, the sources and
    the targets that exist (of the right model)."""
    names: dict[int, str] = {}
    existing_sources: set[int] = set()
    existing_targets: set[int] = set()
    for inst_id, obj_id, name in rows:
        if obj_id == src_obj:
            existing_sources.add(inst_id)
        if obj_id == dest_obj:
            existing_targets.add(inst_id)
        names[inst_id] = name
    return names, existing_sources, existing_targets


def stored_pairs(rows: Iterable) -> tuple[set[tuple[int, int]], set[int], set[int]]:
    """From rows (source, target) of stored associations: the pairs, their sources, their
    targets."""
    pairs: set[tuple[int, int]] = set()
    linked_sources: set[int] = set()
    linked_targets: set[int] = set()
    for src, dest in rows:
        pairs.add((src, dest))
        linked_sources.add(src)
        linked_targets.add(dest)
    return pairs, linked_sources, linked_targets


def decide(
    details: list[tuple[int, int]],
    mapping: str,
    pairs: set[tuple[int, int]],
    linked_sources: set[int],
    linked_targets: set[int],
    existing_sources: set[int],
    existing_targets: set[int],
) -> list[int]:
    """The indexes of the items that pass, decided in order as the service decides them
    (``pairs`` and the linked sets grow with each accepted item)."""
    accepted: list[int] = []
    for index, (src, dest) in enumerate(details):
        if (
            (src, dest) in pairs
            or src not in existing_sources
            or dest not in existing_targets
            or (mapping == "1:1" and (src in linked_sources or dest in linked_targets))
            or (mapping == "1:n" and dest in linked_targets)
        ):
            continue
        pairs.add((src, dest))
        linked_sources.add(src)
        linked_targets.add(dest)
        accepted.append(index)
    return accepted


class RawSqlite:
    INSERT_ASSOCIATIONS = (
        "INSERT INTO inst_associations (bk_obj_asst_id, bk_asst_id, bk_obj_id, bk_inst_id, "
        "bk_asst_obj_id, bk_asst_inst_id, mapping, bk_supplier_account, bk_biz_id, creator, "
        "create_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    INSERT_AUDIT = (
        "INSERT INTO audit_entries (audit_type, resource_type, action, resource_id, "
        "resource_name, operation_detail, bk_username, bk_supplier_account, app_code, "
        "request_id, operation_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    INSERT_EVENTS = (
        "INSERT INTO events (resource, event_type, resource_id, bk_obj_id, bk_asst_obj_id, "
        "detail, create_time) VALUES ('inst_asst', 'create', ?, ?, ?, ?, ?)"
    )

    def __init__(self, path: Path) -> None:
        # The same connection settings as cmdbgraph.db.engine's writer.
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in (
            "busy_timeout = 30000",
            "journal_mode = WAL",
            "foreign_keys = ON",
            "synchronous = NORMAL",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        self._marks: dict[int, str] = {}

    def _marks_for(self, count: int) -> str:
        marks = self._marks.get(count)
        if marks is None:
            marks = self._marks[count] = ",".join("?" * count)
        return marks

    def batch(self, details: list[tuple[int, int]], request_id: str) -> dict[int, int]:
        """Decide and write one batch; returns index -> new id (every decision as the service)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            bk_obj_asst_id, src_obj, dest_obj, kind, mapping = conn.execute(
                "SELECT bk_obj_asst_id, bk_obj_id, bk_asst_obj_id, bk_asst_id, mapping "
                "FROM model_associations WHERE bk_obj_asst_id = ?",
                (OBJ_ASST_ID,),
            ).fetchone()
            sources = {s for s, _ in details}
            targets = {t for _, t in details}
            referenced = list(sources | targets)
            names, existing_sources, existing_targets = found_instances(
                conn.execute(
                    "SELECT bk_inst_id, bk_obj_id, bk_inst_name FROM instances "
                    f"WHERE bk_inst_id IN ({self._marks_for(len(referenced))})",
                    referenced,
                ),
                src_obj,
                dest_obj,
            )
            pairs, linked_sources, linked_targets = stored_pairs(
                conn.execute(
                    "SELECT bk_inst_id, bk_asst_inst_id FROM inst_associations "
                    "WHERE bk_obj_asst_id = ? "
                    f"AND (bk_inst_id IN ({self._marks_for(len(sources))}) "
                    f"OR bk_asst_inst_id IN ({self._marks_for(len(targets))}))",
                    [bk_obj_asst_id, *sources, *targets],
                )
            )
            accepted = decide(
                details, mapping, pairs, linked_sources, linked_targets,
                existing_sources, existing_targets,
            )  # fmt: skip
            created: dict[int, int] = {}
            if accepted:
                now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                conn.executemany(
                    self.INSERT_ASSOCIATIONS,
                    [
                        (
                            bk_obj_asst_id, kind, src_obj, details[i][0], dest_obj,
                            details[i][1], mapping, CALLER.supplier_account, 0,
                            CALLER.username, now,
                        )
                        for i in accepted
                    ],
                )  # fmt: skip
                # AUTOINCREMENT under the write lock: the rows got consecutive ids ending here.
                last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
                first = last - len(accepted) + 1
                created = {index: first + n for n, index in enumerate(accepted)}
                conn.executemany(
                    self.INSERT_AUDIT,
                    [
                        (
                            "model_instance",
                            "instance_association",
                            "create",
                            details[index][0],
                            names.get(details[index][0], ""),
                            audit_detail(
                                new_id,
                                details[index][1],
                                names,
                                bk_obj_asst_id,
                                kind,
                                src_obj,
                                dest_obj,
                            ),
                            CALLER.username,
                            CALLER.supplier_account,
                            CALLER.app_code,
                            request_id,
                            now,
                        )
                        for index, new_id in created.items()
                    ],
                )
                conn.executemany(
                    self.INSERT_EVENTS,
                    [
                        (
                            new_id,
                            src_obj,
                            dest_obj,
                            event_detail(
                                new_id, details[index], bk_obj_asst_id, kind, src_obj, dest_obj,
                                now,
                            ),
                            now,
                        )
                        for index, new_id in created.items()
                    ],
                )  # fmt: skip
            conn.execute("COMMIT")
            return created
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


def audit_detail(
    new_id: int,
    target: int,
    names: dict[int, str],
    bk_obj_asst_id: str,
    kind: str,
    src_obj: str,
    dest_obj: str,
) -> str:
    """The audit entry's operation detail of one created association, as JSON text (the
    service's ``audit.association_detail``)."""
    return orjson.dumps(
        {
            "asst_id": bk_obj_asst_id,
            "asst_kind": kind,
            "src_obj_id": src_obj,
            "dest_obj_id": dest_obj,
            "dest_inst_id": target,
            "dest_inst_name": names.get(target, ""),
            "inst_asst_id": new_id,
        }
    ).decode()


def event_detail(
    new_id: int,
    pair: tuple[int, int],
    bk_obj_asst_id: str,
    kind: str,
    src_obj: str,
    dest_obj: str,
    now: str | datetime,
) -> str:
    """The change stream's detail of one created association, as JSON text (the service's
    ``events.association_detail``)."""
    created = now if isinstance(now, str) else now.isoformat()
    return orjson.dumps(
        {
            "id": new_id,
            "bk_inst_id": pair[0],
            "bk_asst_inst_id": pair[1],
            "bk_obj_id": src_obj,
            "bk_asst_obj_id": dest_obj,
            "bk_supplier_account": CALLER.supplier_account,
            "bk_obj_asst_id": bk_obj_asst_id,
            "bk_asst_id": kind,
            "bk_biz_id": 0,
            "creator": CALLER.username,
            "create_time": created,
        }
    ).decode()


# ---------------------------------------------------------------------------------------------
# 1b. The raw PostgreSQL limit: plain asyncpg, the same statements, no SQLAlchemy


class RawPostgres:
    """The service's statements (``cmdbgraph.db.bulk``'s PostgreSQL texts), in one
    transaction on a plain asyncpg connection: no SQLAlchemy, no service. asyncpg prepares
    and caches each statement; the connection plans them generically, as the service's
    transaction does from its lookups on (``bulk.generic_plans``), without its statement."""

    # The keys the service locks (cmdbgraph.db.engine).
    LOCK_MODEL_ASSOCIATION = "SELECT pg_advisory_xact_lock($1)"
    MODEL_ASSOCIATION = (
        "SELECT bk_obj_asst_id, bk_obj_id, bk_asst_obj_id, bk_asst_id, mapping "
        "FROM model_associations WHERE bk_obj_asst_id = $1"
    )
    INSTANCES = (
        "SELECT i.bk_inst_id, i.bk_obj_id, i.bk_inst_name "
        "FROM unnest($1::bigint[]) AS k(id) "
        "JOIN LATERAL (SELECT bk_inst_id, bk_obj_id, bk_inst_name FROM instances "
        "WHERE bk_inst_id = k.id OFFSET 0) AS i ON true"
    )
    STORED = (
        "SELECT a.bk_inst_id, a.bk_asst_inst_id FROM unnest($2::bigint[]) AS k(id) "
        "JOIN LATERAL (SELECT bk_inst_id, bk_asst_inst_id FROM inst_associations "
        "WHERE bk_obj_asst_id = $1 AND bk_inst_id = k.id OFFSET 0) AS a ON true "
        "UNION "
        "SELECT a.bk_inst_id, a.bk_asst_inst_id FROM unnest($3::bigint[]) AS k(id) "
        "JOIN LATERAL (SELECT bk_inst_id, bk_asst_inst_id FROM inst_associations "
        "WHERE bk_obj_asst_id = $1 AND bk_asst_inst_id = k.id OFFSET 0) AS a ON true"
    )
    INSERT_ASSOCIATIONS = (
        "INSERT INTO inst_associations (bk_obj_asst_id, bk_asst_id, bk_obj_id, bk_inst_id, "
        "bk_asst_obj_id, bk_asst_inst_id, mapping, bk_supplier_account, bk_biz_id, creator, "
        "create_time) "
        "SELECT $1, $2, $3, k.src, $4, k.dest, $5, $6, 0, $7, $8 "
        "FROM unnest($9::bigint[], $10::bigint[]) AS k(src, dest) "
        "RETURNING id, bk_inst_id, bk_asst_inst_id"
    )
    INSERT_AUDIT = (
        "INSERT INTO audit_entries (audit_type, resource_type, action, resource_id, "
        "resource_name, operation_detail, bk_username, bk_supplier_account, app_code, "
        "request_id, operation_time) "
        "SELECT 'model_instance', 'instance_association', 'create', k.id, k.name, k.detail, "
        "$1, $2, $3, $4, $5 "
        "FROM unnest($6::bigint[], $7::text[], $8::json[]) AS k(id, name, detail)"
    )
    LOCK_EVENTS = "SELECT pg_advisory_xact_lock($1), pg_notify($2, '')"
    INSERT_EVENTS = (
        "INSERT INTO events (resource, event_type, resource_id, bk_obj_id, bk_asst_obj_id, "
        "detail, create_time) "
        "SELECT 'inst_asst', 'create', k.id, $1, $2, k.detail, statement_timestamp() "
        "FROM unnest($3::bigint[], $4::json[]) AS k(id, detail)"
    )

    def __init__(self, conn) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, url: str) -> RawPostgres:
        import asyncpg
        from sqlalchemy.engine import make_url

        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(
            await asyncpg.connect(dsn, server_settings={"plan_cache_mode": "force_generic_plan"})
        )

    async def close(self) -> None:
        await self.conn.close()

    async def batch(self, details: list[tuple[int, int]], request_id: str) -> dict[int, int]:
        """Decide and write one batch; returns index -> new id (every decision as the service)."""
        conn = self.conn
        async with conn.transaction():
            await conn.execute(
                self.LOCK_MODEL_ASSOCIATION, zlib.crc32(OBJ_ASST_ID.encode()) - 2**31
            )
            bk_obj_asst_id, src_obj, dest_obj, kind, mapping = await conn.fetchrow(
                self.MODEL_ASSOCIATION, OBJ_ASST_ID
            )
            sources = {s for s, _ in details}
            targets = {t for _, t in details}
            names, existing_sources, existing_targets = found_instances(
                await conn.fetch(self.INSTANCES, list(sources | targets)), src_obj, dest_obj
            )
            pairs, linked_sources, linked_targets = stored_pairs(
                await conn.fetch(self.STORED, bk_obj_asst_id, sorted(sources), sorted(targets))
            )
            accepted = decide(
                details, mapping, pairs, linked_sources, linked_targets,
                existing_sources, existing_targets,
            )  # fmt: skip
            if not accepted:
                return {}
            now = datetime.now(UTC)
            rows = await conn.fetch(
                self.INSERT_ASSOCIATIONS,
                bk_obj_asst_id, kind, src_obj, dest_obj, mapping, CALLER.supplier_account,
                CALLER.username, now,
                [details[i][0] for i in accepted], [details[i][1] for i in accepted],
            )  # fmt: skip
            ids = {(src, dest): new_id for new_id, src, dest in rows}
            created = {index: ids[details[index]] for index in accepted}
            await conn.execute(
                self.INSERT_AUDIT,
                CALLER.username, CALLER.supplier_account, CALLER.app_code, request_id, now,
                [details[index][0] for index in created],
                [names.get(details[index][0], "") for index in created],
                [
                    audit_detail(
                        new_id, details[index][1], names, bk_obj_asst_id, kind, src_obj, dest_obj
                    )
                    for index, new_id in created.items()
                ],
            )  # fmt: skip
            await conn.execute(self.LOCK_EVENTS, engine._EVENTS_LOCK, events.CHANNEL)
            await conn.execute(
                self.INSERT_EVENTS,
                src_obj,
                dest_obj,
                list(created.values()),
                [
                    event_detail(
                        new_id, details[index], bk_obj_asst_id, kind, src_obj, dest_obj, now
                    )
                    for index, new_id in created.items()
                ],
            )
        return created


# ---------------------------------------------------------------------------------------------
# 2. The service in-process


def requests_of(batches: list[list[tuple[int, int]]]) -> list[associations.BatchCreateRequest]:
    return [
        associations.BatchCreateRequest(
            bk_obj_id=SRC_OBJ,
            bk_asst_obj_id=DEST_OBJ,
            bk_obj_asst_id=OBJ_ASST_ID,
            details=[associations.Detail(s, t) for s, t in details],
        )
        for details in batches
    ]


@contextlib.contextmanager
def events_off() -> Iterator[None]:
    """Within: ``batch_create`` records no event (``events.record_associations`` does nothing;
    no events lock either). What a batch cost before events existed, measured in the same run.
    The methods run one at a time, so nothing else in this process writes meanwhile."""
    record = events.record_associations

    async def skip(*args: object, **kwargs: object) -> None:
        return None

    events.record_associations = skip  # type: ignore[assignment]
    try:
        yield
    finally:
        events.record_associations = record


# ---------------------------------------------------------------------------------------------
# 5. Upstream's algorithm, item by item, on the same async SQLAlchemy stack

_ia = inst_associations.c
_DUPLICATE = (
    select(_ia.id)
    .where(
        _ia.bk_obj_asst_id == bindparam("asst"),
        _ia.bk_inst_id == bindparam("src"),
        _ia.bk_asst_inst_id == bindparam("dest"),
    )
    .limit(1)
)
_INSTANCE = select(instances.c.bk_inst_name).where(
    instances.c.bk_inst_id == bindparam("inst"), instances.c.bk_obj_id == bindparam("obj")
)
_SOURCE_LINKED = (
    select(_ia.id)
    .where(_ia.bk_obj_asst_id == bindparam("asst"), _ia.bk_inst_id == bindparam("src"))
    .limit(1)
)
_TARGET_LINKED = (
    select(_ia.id)
    .where(_ia.bk_obj_asst_id == bindparam("asst"), _ia.bk_asst_inst_id == bindparam("dest"))
    .limit(1)
)
_INSERT_ONE = insert(inst_associations).returning(_ia.id)
_INSERT_AUDIT = insert(audit_entries)


async def per_item_batch(
    db: Database, caller: Caller, request: associations.BatchCreateRequest
) -> tuple[dict[str, int], dict[str, str]]:
    """Upstream's loop: every item checked and written before the next (7 statements each)."""
    associations.validate_batch_request(request, limits.MAX_BATCH_SIZE)
    success: dict[str, int] = {}
    errors: dict[str, str] = {}
    async with db.write() as conn:
        await db.lock_model_association(conn, request.bk_obj_asst_id)
        ma = associations.check_model_association(
            await associations.load_model_association(conn, request.bk_obj_asst_id),
            request.bk_obj_id,
            request.bk_asst_obj_id,
        )
        await permissions.authorize_instances(
            conn,
            caller,
            permissions.instances_of_request(ma.bk_obj_id, ma.bk_asst_obj_id, request.details),
        )
        asst = ma.bk_obj_asst_id
        now = datetime.now(UTC)
        for index, (src, dest) in enumerate(request.details):
            key = str(index)
            params = {"asst": asst, "src": src, "dest": dest}
            if (await conn.execute(_DUPLICATE, params)).first() is not None:
                errors[key] = "duplicate"
                continue
            src_name = (await conn.execute(_INSTANCE, {"inst": src, "obj": ma.bk_obj_id})).first()
            if src_name is None:
                errors[key] = "source missing"
                continue
            dest_name = (
                await conn.execute(_INSTANCE, {"inst": dest, "obj": ma.bk_asst_obj_id})
            ).first()
            if dest_name is None:
                errors[key] = "target missing"
                continue
            if ma.mapping == "1:1" and (
                (await conn.execute(_SOURCE_LINKED, params)).first() is not None
                or (await conn.execute(_TARGET_LINKED, params)).first() is not None
            ):
                errors[key] = "1:1"
                continue
            if ma.mapping == "1:n" and (
                (await conn.execute(_TARGET_LINKED, params)).first() is not None
            ):
                errors[key] = "1:n"
                continue
            row = {
                "bk_obj_asst_id": asst,
                "bk_asst_id": ma.bk_asst_id,
                "bk_obj_id": ma.bk_obj_id,
                "bk_inst_id": src,
                "bk_asst_obj_id": ma.bk_asst_obj_id,
                "bk_asst_inst_id": dest,
                "mapping": ma.mapping,
                "bk_supplier_account": caller.supplier_account,
                "bk_biz_id": 0,
                "creator": caller.username,
                "create_time": now,
            }
            row["id"] = (await conn.execute(_INSERT_ONE, row)).scalar_one()
            association = InstAssociation(**{name: row[name] for name in InstAssociation.__slots__})
            names = {src: src_name[0], dest: dest_name[0]}
            await conn.execute(
                _INSERT_AUDIT,
                {
                    "audit_type": "model_instance",
                    "resource_type": "instance_association",
                    "action": "create",
                    "resource_id": src,
                    "resource_name": names[src],
                    "operation_detail": audit.association_detail(association, names),
                    "bk_username": caller.username,
                    "bk_supplier_account": caller.supplier_account,
                    "app_code": caller.app_code,
                    "request_id": caller.request_id,
                    "operation_time": now,
                },
            )
            success[key] = row["id"]
    return success, errors


# ---------------------------------------------------------------------------------------------
# 3, 4. REST and GraphQL over HTTP, on one server process


@contextlib.contextmanager
def bench_server(database_url: str, log_path: Path, *, auth_on: bool) -> Iterator[tuple[str, int]]:
    """A ``cmdbgraph serve`` process on a free port, started as the tests start theirs
    (tests/support/servers.live_server): (base URL, pid). Always terminated on exit."""
    env = {
        "CMDBGRAPH_AUTH": "true" if auth_on else "false",
        # The server imports the same cmdbgraph as this process: the one next to benchmarks/.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    try:
        with live_server(database_url, log_path, env=env) as server:
            yield server.url, server.process.pid
    except ServerFailed as failure:
        raise SystemExit(str(failure)) from None


def rest_call(details: list[tuple[int, int]]) -> tuple[str, bytes, dict[str, str]]:
    body = rest_body(SRC_OBJ, DEST_OBJ, OBJ_ASST_ID, details)
    return ESB_PATH, orjson.dumps(body), {"Content-Type": "application/json"}


def graphql_call(query: str):
    def build(details: list[tuple[int, int]]) -> tuple[str, bytes, dict[str, str]]:
        body = {
            "query": query,
            "variables": {"input": batch_input(SRC_OBJ, DEST_OBJ, OBJ_ASST_ID, details)},
        }
        return "/graphql", orjson.dumps(body), demo_headers(**{"Content-Type": "application/json"})

    return build


def created_by_reply(method: str, reply: dict) -> int:
    if method == "rest":
        if not reply.get("result"):
            raise SystemExit(f"rest: failed reply {str(reply)[:500]}")
        return len(reply["data"]["success_created"])
    if reply.get("errors"):
        raise SystemExit(f"{method}: GraphQL errors {str(reply['errors'])[:500]}")
    payload = reply["data"]["batchCreateInstAssociations"]
    if payload["__typename"] != "BatchCreateInstAssociationsPayload":
        raise SystemExit(f"{method}: {str(payload)[:500]}")
    return payload["createdCount"]
