"""Instance associations: batch create (the main operation), list, delete.

Batch create keeps upstream's observable contract (request checks in upstream's order, the
same per-item rules and messages, a per-index partial-success reply) but costs a handful of
statements whatever the batch size: the model association is resolved once, the referenced
instances and the existing associations are loaded with ``IN`` queries, every item is decided
in memory in index order (so a later item sees the earlier accepted ones, as in upstream's
sequential loop), and the accepted rows and their audit entries are inserted with one
executemany each, all in one transaction.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import orjson
from sqlalchemy import and_, bindparam, delete, func, literal, or_, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from cmdbgraph import metrics
from cmdbgraph.db import bulk
from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import (
    inst_associations,
    model_associations,
)
from cmdbgraph.services import (
    audit,
    auth,
    catalog,
    conditions,
    events,
    idempotency,
    paging,
    permissions,
)
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import (
    ZH,
    CmdbError,
    ErrorCode,
    parameter_check_failed,
    parameter_invalid,
    render,
)
from cmdbgraph.services.limits import Limits
from cmdbgraph.services.records import (
    InstAssociation,
    ModelAssociation,
    Page,
    build_all,
    field_names,
)

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()

# A transaction that lost a race against a concurrent writer is decided again from scratch.
_WRITE_ATTEMPTS = 3
_INST_ASSOCIATION_COLUMNS = [inst_associations.c[name] for name in field_names(InstAssociation)]

# Where a condition's names point (services/conditions.py): upstream's fields of a stored
# association; any other name is a field no association has.
_ia = inst_associations.c
CONDITION_FIELDS = conditions.Fields(
    columns={
        "id": (_ia.id, conditions.Kind.INT),
        "bk_obj_asst_id": (_ia.bk_obj_asst_id, conditions.Kind.STR),
        "bk_asst_id": (_ia.bk_asst_id, conditions.Kind.STR),
        "bk_obj_id": (_ia.bk_obj_id, conditions.Kind.STR),
        "bk_inst_id": (_ia.bk_inst_id, conditions.Kind.INT),
        "bk_asst_obj_id": (_ia.bk_asst_obj_id, conditions.Kind.STR),
        "bk_asst_inst_id": (_ia.bk_asst_inst_id, conditions.Kind.INT),
        "bk_supplier_account": (_ia.bk_supplier_account, conditions.Kind.STR),
        "bk_biz_id": (_ia.bk_biz_id, conditions.Kind.INT),
        "create_time": (_ia.create_time, conditions.Kind.TIME),
    }
)


class Detail(NamedTuple):
    bk_inst_id: int
    bk_asst_inst_id: int


class ErrorPolicy(enum.Enum):
    """What to write when some items of a batch fail."""

    PARTIAL = "partial"  # upstream's: write the items that pass
    ALL_OR_NOTHING = "all_or_nothing"  # write nothing unless every item passes


@dataclass(frozen=True, slots=True)
class BatchCreateRequest:
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_obj_asst_id: str
    details: Sequence[Detail]
    dry_run: bool = False
    policy: ErrorPolicy = ErrorPolicy.PARTIAL
    # A retry with the same key (same caller, same body) returns the first reply.
    idempotency_key: str | None = None
    # Upstream's add_instance_association: the mapping is checked before the pair and the
    # instances, and a pair that exists is its 1199014.
    single: bool = False

    def fingerprint(self) -> str:
        """A digest of what the request asks for, to recognize a retry of it."""
        canonical = orjson.dumps(
            [
                self.bk_obj_id,
                self.bk_asst_obj_id,
                self.bk_obj_asst_id,
                [list(d) for d in self.details],
                self.policy.value,
            ]
        )
        return hashlib.sha256(canonical).hexdigest()


@dataclass(slots=True)
class ItemOutcome:
    """The fate of one detail. ``error`` is None when the item passed every check."""

    index: int
    detail: Detail
    error: ErrorCode | None = None
    error_args: tuple = ()
    association: InstAssociation | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def message(self, language: str = ZH) -> str | None:
        return None if self.error is None else render(self.error, self.error_args, language)


@dataclass(slots=True)
class BatchCreateResult:
    model_association: ModelAssociation
    items: list[ItemOutcome]
    written: bool
    # True when this is the stored reply of an earlier request with the same idempotency key.
    replayed: bool = False

    def to_stored(self) -> dict:
        return {
            "model_association": _jsonable(asdict(self.model_association)),
            "written": self.written,
            "items": [
                [
                    item.index,
                    list(item.detail),
                    None if item.error is None else item.error.value,
                    list(item.error_args),
                    None if item.association is None else _jsonable(asdict(item.association)),
                ]
                for item in self.items
            ],
        }

    @classmethod
    def from_stored(cls, stored: dict) -> BatchCreateResult:
        items = []
        for index, detail, error, error_args, association in stored["items"]:
            if association is not None:
                association = InstAssociation(
                    **{
                        **association,
                        "create_time": datetime.fromisoformat(association["create_time"]),
                    }
                )
            items.append(
                ItemOutcome(
                    index=index,
                    detail=Detail(*detail),
                    error=None if error is None else ErrorCode(error),
                    error_args=tuple(error_args),
                    association=association,
                )
            )
        return cls(
            ModelAssociation(**stored["model_association"]),
            items,
            written=stored["written"],
            replayed=True,
        )

    @property
    def created_count(self) -> int:
        return sum(1 for item in self.items if item.association is not None)

    @property
    def failed_count(self) -> int:
        return sum(1 for item in self.items if item.error is not None)

    def success_created(self) -> dict[str, int]:
        """Upstream's ``success_created`` map: detail index (as a string) to the new id."""
        return _go_map((item.index, item.association.id) for item in self.items if item.association)

    def error_msg(self, language: str = ZH) -> dict[str, str]:
        """Upstream's ``error_msg`` map: detail index (as a string) to the failure message."""
        return _go_map(
            (item.index, render(item.error, item.error_args, language))
            for item in self.items
            if item.error is not None
        )


def _jsonable(values: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


def _go_map(pairs: Iterable[tuple[int, object]]) -> dict:
    # Upstream's maps are Go map[int64]..., which encoding/json writes with the keys sorted as
    # strings ("0", "1", "10", "2", ...). Callers that diff replies byte for byte see the same.
    return dict(sorted((str(index), value) for index, value in pairs))


def validate_batch_request(request: BatchCreateRequest, max_batch_size: int) -> None:
    """Upstream's request-level checks, in upstream's order; the first failure is raised."""
    key = request.idempotency_key
    if key is not None and not idempotency.acceptable(key):
        raise parameter_invalid("Idempotency-Key")
    if not request.bk_obj_asst_id:
        raise parameter_invalid("bk_obj_asst_id")
    if not request.bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    if not request.bk_asst_obj_id:
        raise parameter_invalid("bk_asst_obj_id")
    if not request.details:
        raise CmdbError(ErrorCode.EMPTY, ("details",))
    if len(request.details) > max_batch_size:
        raise CmdbError(ErrorCode.EXCEEDS_LIMIT, ("details", max_batch_size))
    if not request.bk_obj_asst_id.startswith(request.bk_obj_id):
        raise parameter_check_failed("bk_obj_id")
    if not request.bk_obj_asst_id.endswith(request.bk_asst_obj_id):
        raise parameter_check_failed("bk_asst_obj_id")


# Built once: building a select and its comparison on every batch was a sixth of a batch's
# Python on SQLite.
_MODEL_ASSOCIATION = select(
    *(model_associations.c[name] for name in field_names(ModelAssociation))
).where(model_associations.c.bk_obj_asst_id == bindparam("bk_obj_asst_id"))


async def load_model_association(
    conn: AsyncConnection, bk_obj_asst_id: str
) -> ModelAssociation | None:
    row = (await conn.execute(_MODEL_ASSOCIATION, {"bk_obj_asst_id": bk_obj_asst_id})).first()
    return None if row is None else ModelAssociation.from_row(row)


def check_model_association(
    model_association: ModelAssociation | None, bk_obj_id: str, bk_asst_obj_id: str
) -> ModelAssociation:
    """The stored model association must exist, join exactly these models, and not be mainline."""
    if model_association is None:
        raise CmdbError(ErrorCode.MODEL_ASSOCIATION_NOT_FOUND)
    if model_association.bk_obj_id != bk_obj_id:
        raise parameter_check_failed("bk_obj_id")
    if model_association.bk_asst_obj_id != bk_asst_obj_id:
        raise parameter_check_failed("bk_asst_obj_id")
    if model_association.bk_asst_id == "bk_mainline":
        raise CmdbError(ErrorCode.MAINLINE_NOT_ALLOWED)
    return model_association


async def batch_create(
    db: Database,
    caller: Caller,
    request: BatchCreateRequest,
    *,
    limits: Limits = DEFAULT_LIMITS,
    idempotency_ttl: timedelta = timedelta(days=1),
) -> BatchCreateResult:
    """Create the associations of ``request.details``; report the fate of every index.

    Raises ``CmdbError`` for request-level failures (nothing is written then): first a
    missing permission on any source or target instance, as upstream checks permissions
    before the body; then upstream's checks in upstream's order. The instances are those of
    the request's models, which must equal the stored model association's.

    With an idempotency key, the reply is stored in the same transaction, and a retry of the
    same request by the same caller returns it instead of running again (the same key with
    another body is refused).

    A batch may hold thousands of details (an import's): its statements are planned
    generically whatever its size (``bulk.generic_plans``), so the foreign-key checks of its
    rows are planned once per connection, not once per row.
    """
    if caller.enforce_permissions:
        # Upstream authorizes before it validates the body: a caller without the permission
        # learns nothing about the request's other faults.
        auth.require_user(caller)
        if request.bk_obj_id and request.bk_asst_obj_id and request.details:
            async with db.read() as conn:
                await permissions.authorize_instances(
                    conn,
                    caller,
                    permissions.instances_of_request(
                        request.bk_obj_id, request.bk_asst_obj_id, request.details
                    ),
                )
    validate_batch_request(request, limits.max_batch_size)
    stored_key = None
    if request.idempotency_key is not None and not request.dry_run:
        stored_key = idempotency.stored_key(caller, request.idempotency_key)
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        try:
            async with db.write() as conn:
                await db.lock_model_association(conn, request.bk_obj_asst_id)
                if stored_key is not None:
                    stored = await idempotency.stored_reply(conn, stored_key, request.fingerprint())
                    if stored is not None:
                        return BatchCreateResult.from_stored(stored)
                model_association = check_model_association(
                    await load_model_association(conn, request.bk_obj_asst_id),
                    request.bk_obj_id,
                    request.bk_asst_obj_id,
                )
                items, names = await _decide(
                    conn, model_association, request.details, single=request.single
                )
                write = not request.dry_run and (
                    request.policy is ErrorPolicy.PARTIAL or all(i.ok for i in items)
                )
                if write and any(i.ok for i in items):
                    await _insert(db, conn, caller, model_association, items, names)
                result = BatchCreateResult(model_association, items, written=write)
                if stored_key is not None:
                    await idempotency.store_reply(
                        conn, stored_key, request.fingerprint(), result.to_stored(), idempotency_ttl
                    )
            if result.written and result.created_count:
                events.committed(db)
            metrics.record_batch(result)
            return result
        except IntegrityError as error:
            # A unique or foreign key conflict means a concurrent writer changed what this one
            # decided on (the per-model-association lock makes that rare): decide again on the
            # new state. Any other integrity error is a bug, not a race.
            if attempt == _WRITE_ATTEMPTS or not _is_conflict(error):
                raise
            log.warning(
                "batch create on %s lost a race, retrying (attempt %d)",
                request.bk_obj_asst_id,
                attempt,
            )
    raise AssertionError("unreachable")


def _is_conflict(error: IntegrityError) -> bool:
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate is not None:
        return sqlstate in ("23505", "23503")  # unique violation, foreign key violation
    text = str(original)
    return "UNIQUE constraint failed" in text or "FOREIGN KEY constraint failed" in text


async def _decide(
    conn: AsyncConnection,
    model_association: ModelAssociation,
    details: Sequence[Detail],
    *,
    single: bool = False,
) -> tuple[list[ItemOutcome], dict[int, str]]:
    """Decide every item in index order, as upstream's loop would, with two queries
    (``single``: in the order of upstream's add_instance_association)."""
    bk_obj_asst_id = model_association.bk_obj_asst_id
    src_obj, dest_obj = model_association.bk_obj_id, model_association.bk_asst_obj_id
    mapping = model_association.mapping
    await bulk.generic_plans(conn)
    instance_rows = await bulk.instances_by_ids(
        conn, {d.bk_inst_id for d in details} | {d.bk_asst_inst_id for d in details}
    )
    names: dict[int, str] = {}
    existing_sources: set[int] = set()
    existing_targets: set[int] = set()
    for inst_id, obj_id, name in instance_rows:
        if obj_id == src_obj:
            existing_sources.add(inst_id)
        if obj_id == dest_obj:
            existing_targets.add(inst_id)
        names[inst_id] = name

    stored = await bulk.stored_associations(conn, bk_obj_asst_id, mapping, details)
    pairs: set[tuple[int, int]] = set()
    linked_sources: set[int] = set()
    linked_targets: set[int] = set()
    for src, dest in stored:
        pairs.add((src, dest))
        linked_sources.add(src)
        linked_targets.add(dest)

    duplicate_args = (src_obj, dest_obj)
    items: list[ItemOutcome] = []
    for index, detail in enumerate(details):
        src, dest = detail
        item = ItemOutcome(index, detail)
        if single:
            _decide_single(
                item,
                mapping,
                pairs,
                linked_sources,
                linked_targets,
                existing_sources,
                existing_targets,
            )
            items.append(item)
            continue
        if (src, dest) in pairs:
            item.error, item.error_args = ErrorCode.ASSOCIATION_ALREADY_EXISTS, duplicate_args
        elif src not in existing_sources:
            item.error = ErrorCode.SOURCE_INSTANCE_NOT_FOUND
        elif dest not in existing_targets:
            item.error = ErrorCode.TARGET_INSTANCE_NOT_FOUND
        elif mapping == "1:1" and (src in linked_sources or dest in linked_targets):
            item.error = ErrorCode.ONE_TO_ONE_VIOLATION
        elif mapping == "1:n" and dest in linked_targets:
            item.error = ErrorCode.ONE_TO_MANY_VIOLATION
        else:
            pairs.add((src, dest))
            linked_sources.add(src)
            linked_targets.add(dest)
        items.append(item)
    return items, names


def _decide_single(
    item: ItemOutcome,
    mapping: str,
    pairs: set[tuple[int, int]],
    linked_sources: set[int],
    linked_targets: set[int],
    existing_sources: set[int],
    existing_targets: set[int],
) -> None:
    """Upstream's add_instance_association: the mapping (counted among stored associations),
    then the pair (1199014 ``association``), then the instances."""
    src, dest = item.detail
    if mapping == "1:1" and (src in linked_sources or dest in linked_targets):
        item.error = ErrorCode.ONE_TO_ONE_VIOLATION
    elif mapping == "1:n" and dest in linked_targets:
        item.error = ErrorCode.ONE_TO_MANY_VIOLATION
    elif (src, dest) in pairs:
        item.error, item.error_args = ErrorCode.DUPLICATED, ("association",)
    elif src not in existing_sources:
        item.error = ErrorCode.SOURCE_INSTANCE_NOT_FOUND
    elif dest not in existing_targets:
        item.error = ErrorCode.TARGET_INSTANCE_NOT_FOUND


async def _insert(
    db: Database,
    conn: AsyncConnection,
    caller: Caller,
    model_association: ModelAssociation,
    items: list[ItemOutcome],
    names: dict[int, str],
) -> None:
    """Insert the accepted items and their audit entries; fill ``item.association``."""
    now = datetime.now(UTC)
    ma = model_association
    accepted = [item for item in items if item.ok]
    ids = await bulk.insert_associations(
        conn,
        bk_obj_asst_id=ma.bk_obj_asst_id,
        bk_asst_id=ma.bk_asst_id,
        bk_obj_id=ma.bk_obj_id,
        bk_asst_obj_id=ma.bk_asst_obj_id,
        mapping=ma.mapping,
        supplier_account=caller.supplier_account,
        creator=caller.username,
        now=now,
        pairs=[item.detail for item in accepted],
    )
    for item in accepted:
        src, dest = item.detail
        item.association = InstAssociation(
            id=ids[item.detail],
            bk_obj_asst_id=ma.bk_obj_asst_id,
            bk_asst_id=ma.bk_asst_id,
            bk_obj_id=ma.bk_obj_id,
            bk_inst_id=src,
            bk_asst_obj_id=ma.bk_asst_obj_id,
            bk_asst_inst_id=dest,
            bk_supplier_account=caller.supplier_account,
            bk_biz_id=0,
            creator=caller.username,
            create_time=now,
        )
    created = [item.association for item in accepted if item.association is not None]
    await audit.record_associations(conn, caller, "create", created, names, now=now)
    await events.record_associations(db, conn, events.CREATE, created, now=now)


async def create_one(
    db: Database, caller: Caller, bk_obj_asst_id: str, bk_inst_id: int, bk_asst_inst_id: int
) -> InstAssociation:
    """Create a single association (upstream's ``add_instance_association``).

    The same checks as a batch of one; an item failure is raised as a request-level error
    with the item's code and message.
    """
    # Upstream looks an empty id up too: no model association has it (1101046).
    async with db.read() as conn:
        model_association = await load_model_association(conn, bk_obj_asst_id)
    if model_association is None:
        raise CmdbError(ErrorCode.MODEL_ASSOCIATION_NOT_FOUND)
    result = await batch_create(
        db,
        caller,
        BatchCreateRequest(
            bk_obj_id=model_association.bk_obj_id,
            bk_asst_obj_id=model_association.bk_asst_obj_id,
            bk_obj_asst_id=bk_obj_asst_id,
            details=[Detail(bk_inst_id, bk_asst_inst_id)],
            single=True,
        ),
    )
    (item,) = result.items
    if item.error is not None:
        raise CmdbError(item.error, item.error_args)
    assert item.association is not None
    return item.association


# ---------------------------------------------------------------------------------------------
# Reads


@dataclass(frozen=True, slots=True)
class AssociationFilter:
    ids: Sequence[int] | None = None
    bk_obj_asst_id: str | None = None
    bk_asst_id: str | None = None
    bk_obj_id: str | None = None
    bk_asst_obj_id: str | None = None
    bk_inst_id: int | None = None
    bk_asst_inst_id: int | None = None
    # An instance on either side (of model ``involving_obj_id`` when given).
    involving_inst_id: int | None = None
    involving_obj_id: str | None = None
    # A model on either side: upstream keeps each association under both its models.
    either_obj_id: str | None = None
    # Upstream's condition (services/conditions.py), on top of the fields above.
    condition: conditions.Node | None = None


def _conditions(flt: AssociationFilter, dialect: str) -> list[ColumnElement[bool]]:
    ia = inst_associations.c
    where: list[ColumnElement[bool]] = []
    if flt.ids is not None:
        where.append(ia.id.in_(list(flt.ids)))
    for name in ("bk_obj_asst_id", "bk_asst_id", "bk_obj_id", "bk_asst_obj_id"):
        value = getattr(flt, name)
        if value is not None:
            where.append(ia[name] == value)
    if flt.bk_inst_id is not None:
        where.append(ia.bk_inst_id == flt.bk_inst_id)
    if flt.bk_asst_inst_id is not None:
        where.append(ia.bk_asst_inst_id == flt.bk_asst_inst_id)
    if flt.involving_inst_id is not None:
        as_source = ia.bk_inst_id == flt.involving_inst_id
        as_target = ia.bk_asst_inst_id == flt.involving_inst_id
        if flt.involving_obj_id is not None:
            as_source = and_(as_source, ia.bk_obj_id == flt.involving_obj_id)
            as_target = and_(as_target, ia.bk_asst_obj_id == flt.involving_obj_id)
        where.append(or_(as_source, as_target))
    if flt.either_obj_id is not None:
        where.append(or_(ia.bk_obj_id == flt.either_obj_id, ia.bk_asst_obj_id == flt.either_obj_id))
    if flt.condition is not None:
        where.append(conditions.compile_condition(flt.condition, CONDITION_FIELDS, dialect))
    return where


def _named_models(flt: AssociationFilter) -> dict[str, str | None]:
    """The models ``flt`` names, by parameter: checked to exist when nothing was found."""
    return {
        "bk_obj_id": flt.bk_obj_id or flt.involving_obj_id or flt.either_obj_id,
        "bk_asst_obj_id": flt.bk_asst_obj_id,
    }


async def _count(conn: AsyncConnection, where: list[ColumnElement[bool]]) -> int:
    query = select(func.count()).select_from(inst_associations).where(*where)
    return (await conn.execute(query)).scalar_one()


async def _rows(
    conn: AsyncConnection,
    where: list[ColumnElement[bool]],
    *,
    offset: int,
    limit: int | None,
    sort: Sequence[tuple[str, bool]],
) -> list[InstAssociation]:
    rows = await conn.execute(
        select(*_INST_ASSOCIATION_COLUMNS)
        .where(*where)
        .order_by(*conditions.ordering(CONDITION_FIELDS, sort), inst_associations.c.id)
        .offset(offset)
        .limit(limit)
    )
    return await build_all(rows, InstAssociation.from_row)


async def list_associations(
    db: Database,
    flt: AssociationFilter,
    *,
    offset: int = 0,
    limit: int | None = 50,
    sort: Sequence[tuple[str, bool]] = (),
) -> Page[InstAssociation]:
    """A page of associations matching ``flt`` and how many match, ordered by ``sort``
    ((field, descending) pairs; a name that is not a field sorts nothing, as in MongoDB) and
    then by id (``limit=None``: all of them)."""
    where = _conditions(flt, db.dialect)
    async with db.read() as conn:
        total = await _count(conn, where)
        if total == 0:
            await catalog.require_models(conn, _named_models(flt))
        items = await _rows(conn, where, offset=offset, limit=limit, sort=sort)
        return Page(total, items)


LIST = "inst_asst"  # the cursors of association lists


async def association_slice(
    db: Database, flt: AssociationFilter, win: paging.Window
) -> paging.Slice[InstAssociation]:
    """The associations matching ``flt`` in the window ``win`` of the list ordered by id."""
    where = _conditions(flt, db.dialect)
    async with db.read() as conn:
        found = await paging.keyset(
            db,
            select(*_INST_ASSOCIATION_COLUMNS),
            inst_associations.c.id,
            where,
            win,
            InstAssociation.from_row,
            conn=conn,
        )
        if not found.items and win.after is None and win.before is None:
            await catalog.require_models(conn, _named_models(flt))
        return found


async def association_slices(
    db: Database, *, as_target: bool, inst_ids: Sequence[int], win: paging.Window
) -> dict[int, paging.Slice[InstAssociation]]:
    """For each of ``inst_ids``, the window ``win`` of the associations whose source (or
    target, ``as_target``) it is, ordered by id: a keyset read per instance (an index range
    each), all of them in one statement (``_SLICES_PER_STATEMENT`` instances a statement)."""
    side = inst_associations.c.bk_asst_inst_id if as_target else inst_associations.c.bk_inst_id
    key = inst_associations.c.id
    wanted = list(dict.fromkeys(inst_ids))
    rows: dict[int, list] = {inst_id: [] for inst_id in wanted}
    async with db.read() as conn:
        for start in range(0, len(wanted), _SLICES_PER_STATEMENT):
            reads = [
                select(
                    paging.statement(select(*_INST_ASSOCIATION_COLUMNS), key, [side == i], win)
                    .add_columns(literal(i).label("_inst"))
                    .subquery()
                )
                for i in wanted[start : start + _SLICES_PER_STATEMENT]
            ]
            statement = reads[0] if len(reads) == 1 else union_all(*reads)
            for row in (await conn.execute(statement)).all():
                rows[row._mapping["_inst"]].append(row)
    # A compound SELECT keeps no order: each instance's rows in the order they were read.
    return {
        inst_id: await paging.slice_of(
            db,
            sorted(found, key=lambda row: row.id, reverse=win.backward),
            key,
            [side == inst_id],
            win,
            InstAssociation.from_row,
        )
        for inst_id, found in rows.items()
    }


# SQLite takes at most 500 terms in one compound SELECT.
_SLICES_PER_STATEMENT = 200


async def find_associations(
    db: Database,
    flt: AssociationFilter,
    *,
    offset: int = 0,
    limit: int | None = None,
    sort: Sequence[tuple[str, bool]] = (),
) -> list[InstAssociation]:
    """The associations of ``list_associations``, not counted: for the reads that answer
    only the items."""
    where = _conditions(flt, db.dialect)
    async with db.read() as conn:
        items = await _rows(conn, where, offset=offset, limit=limit, sort=sort)
        if not items:
            await catalog.require_models(conn, _named_models(flt))
        return items


async def count_associations(db: Database, flt: AssociationFilter) -> int:
    """How many associations match ``flt``."""
    where = _conditions(flt, db.dialect)
    async with db.read() as conn:
        total = await _count(conn, where)
        if total == 0:
            await catalog.require_models(conn, _named_models(flt))
        return total


async def associations_after(
    db: Database, after_id: int, *, limit: int, bk_obj_asst_id: str | None = None
) -> list[InstAssociation]:
    """Up to ``limit`` associations with an id above ``after_id``, in id order (keyset paging,
    flat cost on any table size)."""
    ia = inst_associations.c
    query = select(*_INST_ASSOCIATION_COLUMNS).where(ia.id > after_id)
    if bk_obj_asst_id is not None:
        query = query.where(ia.bk_obj_asst_id == bk_obj_asst_id)
    async with db.read() as conn:
        rows = await conn.execute(query.order_by(ia.id).limit(limit))
        return await build_all(rows, InstAssociation.from_row)


async def associations_by_source(
    db: Database, inst_ids: Sequence[int], *, limit: int
) -> dict[int, list[InstAssociation]]:
    """The first ``limit`` associations (by id) whose source is each of ``inst_ids``, grouped
    by source (one query)."""
    return await _grouped(db, inst_associations.c.bk_inst_id, inst_ids, limit)


async def associations_by_target(
    db: Database, inst_ids: Sequence[int], *, limit: int
) -> dict[int, list[InstAssociation]]:
    """The first ``limit`` associations (by id) whose target is each of ``inst_ids``, grouped
    by target (one query)."""
    return await _grouped(db, inst_associations.c.bk_asst_inst_id, inst_ids, limit)


async def _grouped(db: Database, column, inst_ids: Sequence[int], limit: int) -> dict:
    grouped: dict[int, list[InstAssociation]] = {inst_id: [] for inst_id in inst_ids}
    rank = func.row_number().over(partition_by=column, order_by=inst_associations.c.id)
    ranked = (
        select(*_INST_ASSOCIATION_COLUMNS, rank.label("rank"))
        .where(column.in_(list(inst_ids)))
        .subquery()
    )
    query = (
        select(*(ranked.c[c.name] for c in _INST_ASSOCIATION_COLUMNS))
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.id)
    )
    async with db.read() as conn:
        found = await build_all(
            await conn.execute(query),
            lambda row: (row._mapping[column.name], InstAssociation.from_row(row)),
        )
    for inst_id, association in found:
        grouped[inst_id].append(association)
    return grouped


# ---------------------------------------------------------------------------------------------
# Delete


async def delete_associations(
    db: Database,
    caller: Caller,
    ids: Sequence[int],
    *,
    bk_obj_id: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> list[InstAssociation]:
    """Delete the associations with these ids (those that exist) in one transaction.

    With ``bk_obj_id``, only associations whose source or target model is ``bk_obj_id`` are
    deleted, as upstream scopes its delete calls. Returns what was deleted; each deletion is
    audited. The caller needs the edit permission on both instances of each.
    """
    if not ids:
        raise CmdbError(ErrorCode.EMPTY, ("id",))
    if len(ids) > limits.max_delete_ids:
        raise CmdbError(ErrorCode.EXCEEDS_LIMIT, ("id", limits.max_delete_ids))
    ia = inst_associations.c
    conditions: list[ColumnElement[bool]] = [ia.id.in_(list(ids))]
    if bk_obj_id is not None:
        conditions.append(or_(ia.bk_obj_id == bk_obj_id, ia.bk_asst_obj_id == bk_obj_id))
    async with db.write() as conn:
        found = [
            InstAssociation.from_row(row)
            for row in await conn.execute(
                select(*_INST_ASSOCIATION_COLUMNS).where(*conditions).order_by(ia.id)
            )
        ]
        if not found:
            await catalog.require_models(conn, {"bk_obj_id": bk_obj_id})
            return []
        wanted: dict[str, set[int]] = {}
        for a in found:
            wanted.setdefault(a.bk_obj_id, set()).add(a.bk_inst_id)
            wanted.setdefault(a.bk_asst_obj_id, set()).add(a.bk_asst_inst_id)
        await permissions.authorize_instances(conn, caller, wanted)
        await conn.execute(delete(inst_associations).where(ia.id.in_([a.id for a in found])))
        names = await audit.instance_names(
            conn, {a.bk_inst_id for a in found} | {a.bk_asst_inst_id for a in found}
        )
        now = datetime.now(UTC)
        await audit.record_associations(conn, caller, "delete", found, names, now=now)
        await events.record_associations(db, conn, events.DELETE, found, now=now)
    events.committed(db)
    return found
