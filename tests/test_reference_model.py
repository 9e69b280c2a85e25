"""The set-based batch create against a plain per-item model of upstream's algorithm.

``Reference`` (tests/support/reference.py) walks the details one at a time exactly as BlueKing
CMDB does (behaviour spec, section 3): every accepted item is stored before the next one is
checked. The test creates, through the services, three models, model associations of every
mapping (one of a model with itself) and a pool of instances; hypothesis draws which mappings
an example uses, how many instances it may name, and a sequence of batches (partial,
all-or-nothing, dry run) whose ids come from a small space: instances of the right and of the
wrong model, demo instances, unknown, zero, negative and extreme ids. Duplicates within a batch
and against stored rows, mapping conflicts and missing instances are frequent; a few explicit
examples pin the cases where only the stored state decides. Every batch goes through the
service and through the model: the per-index outcome, the messages in both languages, the
stored rows, their ids and the audit entries must agree.

Hypothesis runs every example in one test, so the examples share the test's database and one
event loop kept in a thread: each example first deletes the associations of the test's model
associations, so it starts from none.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import audit_entries, inst_associations
from cmdbgraph.services import associations as svc
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.catalog import (
    NewModel,
    NewModelAssociation,
    create_model,
    create_model_association,
)
from cmdbgraph.services.errors import ErrorCode
from cmdbgraph.services.instances import NewInstance, create_instances
from cmdbgraph.services.kinds import NewKind, create_kind
from cmdbgraph.settings import Settings
from tests.support import upstream
from tests.support.reference import ModelAsst, Reference, expected_messages
from tests.support.upstream import EN, ZH

# The demo user "admin" holds the edit grant on every model: permissions are checked, and pass.
CALLER = Caller(username="admin", app_code="tests", request_id="refmodel")

# Upstream's per-item codes (behaviour spec, section 3), as the reference gives them.
DUPLICATE = upstream.DUPLICATE.code
SOURCE_MISSING = upstream.SOURCE_MISSING.code
TARGET_MISSING = upstream.TARGET_MISSING.code
ONE_TO_ONE = upstream.ONE_TO_ONE.code
ONE_TO_MANY = upstream.ONE_TO_MANY.code

# The demo data (cmdbgraph.services.demo): instances of models no example association uses,
# so as a source or a target they are always instances of the wrong model.
DEMO_INSTANCES = {
    11: "bk_switch",
    13: "bk_switch",
    21: "host",
    22: "host",
    31: "bk_router",
    41: "bk_firewall",
}
# Ids no instance has: 12 is the demo's deliberate hole; the others are out of any sequence.
MISSING_IDS = [12, 0, -1, -21, 10**12, 2**63 - 1, -(2**63)]
SPECIAL_IDS = [*DEMO_INSTANCES, *MISSING_IDS]


# ---------------------------------------------------------------------------------------------
# What hypothesis draws. Instances are named by (model, position) and special ids by value;
# they become real ids once the test has created its instances.

MODELS = ("a", "b", "c")
MAX_INSTANCES = {"a": 4, "b": 4, "c": 2}
MAPPINGS = ("1:1", "1:n", "n:n")
# Slots of model associations: (source model, association kind, target model, mapping). A slot
# whose mapping is None exists once per mapping and each example draws which one it uses.
ASSOCIATIONS = (
    ("a", "default", "b", "1:1"),
    ("a", "connect", "b", "1:n"),
    ("a", "belong", "b", "n:n"),
    ("b", "group", "b", None),  # an association of a model with itself
    ("a", "run", "c", None),
)


@dataclass(frozen=True)
class Batch:
    association: int
    details: tuple[tuple[object, object], ...]
    dry_run: bool
    all_or_nothing: bool


@dataclass(frozen=True)
class Scenario:
    mappings: tuple[str, ...]
    counts: dict[str, int]
    batches: tuple[Batch, ...]


@st.composite
def scenarios(draw) -> Scenario:
    mappings = tuple(
        mapping if mapping is not None else draw(st.sampled_from(MAPPINGS))
        for *_, mapping in ASSOCIATIONS
    )
    counts = {
        "a": draw(st.integers(1, MAX_INSTANCES["a"])),
        "b": draw(st.integers(1, MAX_INSTANCES["b"])),
        "c": draw(st.integers(0, MAX_INSTANCES["c"])),
    }
    any_instance = [(model, i) for model in MODELS for i in range(counts[model])]

    def instance_of(model: str):
        # Mostly an instance of the model the association wants (when it has any), otherwise
        # any instance of the example or a special id.
        own = [(model, i) for i in range(counts[model])]
        pools = [own] * 4 + [any_instance, SPECIAL_IDS] if own else [any_instance, SPECIAL_IDS]
        return st.sampled_from(pools).flatmap(st.sampled_from)

    # Most batches of an example go to one model association, so that later batches meet the
    # associations the earlier ones stored; the others go anywhere.
    focus = draw(st.integers(0, len(ASSOCIATIONS) - 1))
    anywhere = st.integers(0, len(ASSOCIATIONS) - 1)
    batches = []
    # Details of the earlier batches, per association: a later batch often meets them again
    # (the same pair, or one end of it) so that the stored state decides its fate.
    earlier: dict[int, list[tuple[object, object]]] = {}
    # The first batches build the stored state, the last one is checked against it; all of
    # them are compared with the reference.
    for _ in range(draw(st.integers(1, 5))):
        association = draw(st.sampled_from([focus, focus, focus, None]))
        if association is None:
            association = draw(anywhere)
        src_model, _, dest_model, _ = ASSOCIATIONS[association]
        details: list[tuple[object, object]] = []
        for _ in range(draw(st.integers(1, 8))):
            pools = [p for p in (earlier.get(association), earlier.get(association), details) if p]
            if pools and draw(st.booleans()):
                # Repeat a detail of an earlier batch or of this one, or change one end.
                src, dest = draw(st.sampled_from(draw(st.sampled_from(pools))))
                how = draw(st.sampled_from(["same", "new_source", "new_target"]))
                if how == "new_source":
                    src = draw(instance_of(src_model))
                elif how == "new_target":
                    dest = draw(instance_of(dest_model))
                details.append((src, dest))
            else:
                details.append((draw(instance_of(src_model)), draw(instance_of(dest_model))))
        earlier.setdefault(association, []).extend(details)
        batches.append(
            Batch(
                association=association,
                details=tuple(details),
                dry_run=draw(st.sampled_from([False, False, False, False, True])),
                all_or_nothing=draw(st.sampled_from([False, False, False, True])),
            )
        )
    return Scenario(mappings=mappings, counts=counts, batches=tuple(batches))


# ---------------------------------------------------------------------------------------------
# The test is synchronous (hypothesis drives it): the examples run on one event loop kept in a
# thread for the whole test.


class LoopThread:
    """An event loop running in a thread; ``run`` waits for a coroutine on it, bounded."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = 120):
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class Catalog:
    """What the test creates once through the services; the examples only add associations."""

    slots: list[dict[str, ModelAsst]]  # per slot of ASSOCIATIONS: mapping -> model association
    kinds: dict[str, str]  # bk_obj_asst_id -> bk_asst_id
    instance_ids: dict[tuple[str, int], int]  # (model, position) -> bk_inst_id
    instances: dict[int, str]  # every instance an example can name -> bk_obj_id

    @property
    def asst_ids(self) -> list[str]:
        return [a.bk_obj_asst_id for slot in self.slots for a in slot.values()]


async def _create_catalog(db: Database) -> Catalog:
    model_ids = {model: f"rm_{model}" for model in MODELS}
    for model, bk_obj_id in model_ids.items():
        await create_model(db, CALLER, NewModel(bk_obj_id, f"reference model {model}"))
    slots: list[dict[str, ModelAsst]] = []
    kinds: dict[str, str] = {}
    made_kinds: set[str] = set()
    for src, kind, dest, fixed in ASSOCIATIONS:
        slot = {}
        for mapping in [fixed] if fixed else MAPPINGS:
            # One model association per mapping of a drawn slot, with ids told apart.
            tag = "" if fixed else {"1:1": "_one", "1:n": "_many", "n:n": "_free"}[mapping]
            # Two models are associated once per kind (upstream's 1101038): each mapping of a
            # slot has a kind of its own.
            slot_kind = f"{kind}{tag}"
            if tag and slot_kind not in made_kinds:
                await create_kind(db, CALLER, NewKind(slot_kind, slot_kind))
                made_kinds.add(slot_kind)
            created = await create_model_association(
                db,
                CALLER,
                NewModelAssociation(
                    bk_obj_id=model_ids[src],
                    bk_asst_obj_id=model_ids[dest],
                    bk_asst_id=slot_kind,
                    mapping=mapping,
                    bk_obj_asst_id=f"{model_ids[src]}_{slot_kind}_{model_ids[dest]}",
                ),
            )
            assert created.mapping == mapping
            slot[mapping] = ModelAsst(
                created.bk_obj_asst_id, created.bk_obj_id, created.bk_asst_obj_id, mapping
            )
            kinds[created.bk_obj_asst_id] = slot_kind
        slots.append(slot)
    instance_ids: dict[tuple[str, int], int] = {}
    instances = dict(DEMO_INSTANCES)
    for model in MODELS:
        created_instances = await create_instances(
            db,
            CALLER,
            model_ids[model],
            [NewInstance(f"{model}-{i}") for i in range(MAX_INSTANCES[model])],
        )
        for i, instance in enumerate(created_instances):
            assert instance.bk_obj_id == model_ids[model]
            instance_ids[(model, i)] = instance.bk_inst_id
            instances[instance.bk_inst_id] = model_ids[model]
    assert not set(instances) & set(MISSING_IDS)
    return Catalog(slots, kinds, instance_ids, instances)


@dataclass
class Harness:
    loop: LoopThread
    db: Database
    catalog: Catalog


@pytest.fixture
def harness(database_url):
    async def open_database() -> Database:
        return Database(Settings(database_url=database_url))

    loop = LoopThread()
    try:
        db = loop.run(open_database())
        try:
            yield Harness(loop, db, loop.run(_create_catalog(db)))
        finally:
            loop.run(db.dispose(), timeout=30)
    finally:
        loop.close()


# ---------------------------------------------------------------------------------------------
# One example: start from no association, then run every batch on both sides.


async def _stored_rows(db: Database, asst_ids: list[str]) -> list[tuple]:
    ia = inst_associations.c
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                ia.bk_obj_asst_id,
                ia.bk_inst_id,
                ia.bk_asst_inst_id,
                ia.id,
                ia.bk_obj_id,
                ia.bk_asst_obj_id,
                ia.bk_asst_id,
                ia.mapping,
            ).where(ia.bk_obj_asst_id.in_(asst_ids))
        )
        return [tuple(row) for row in rows]


async def _last_audit_id(db: Database) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.max(audit_entries.c.id)))).scalar_one() or 0


async def _audit_created_since(db: Database, last_id: int) -> tuple[list[int], int]:
    """The association ids of the create entries written after ``last_id``; the new last id."""
    ae = audit_entries.c
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(ae.id, ae.action, ae.resource_type, ae.operation_detail)
                .where(ae.id > last_id)
                .order_by(ae.id)
            )
        ).all()
    created = [
        row.operation_detail["inst_asst_id"]
        for row in rows
        if row.action == "create" and row.resource_type == "instance_association"
    ]
    assert len(created) == len(rows), "only association create entries were expected"
    return created, max([last_id, *(row.id for row in rows)])


async def _check_example(db: Database, catalog: Catalog, scenario: Scenario) -> set[str]:
    """Runs the scenario on both sides; returns the kinds of outcome seen (for statistics)."""
    asst_ids = catalog.asst_ids
    async with db.write() as conn:
        # The examples share the test's database: each starts with no association.
        await conn.execute(
            delete(inst_associations).where(inst_associations.c.bk_obj_asst_id.in_(asst_ids))
        )

    def resolve(token: object) -> int:
        return catalog.instance_ids[token] if isinstance(token, tuple) else token

    in_use = {
        slot[mapping].bk_obj_asst_id: slot[mapping]
        for slot, mapping in zip(catalog.slots, scenario.mappings, strict=True)
    }
    reference = Reference(catalog.instances, in_use)
    last_audit = await _last_audit_id(db)
    ids_by_triple: dict[tuple[str, int, int], int] = {}
    seen: set[str] = set()

    for number, batch in enumerate(scenario.batches):
        asst = catalog.slots[batch.association][scenario.mappings[batch.association]]
        kind = catalog.kinds[asst.bk_obj_asst_id]
        details = [(resolve(s), resolve(d)) for s, d in batch.details]
        where = (
            f"batch {number} on {asst.bk_obj_asst_id} ({asst.mapping}, dry run "
            f"{batch.dry_run}, all or nothing {batch.all_or_nothing}): {details}; "
            f"stored before: {reference.associations}"
        )

        expected, expect_written = reference.batch_create(
            asst.bk_obj_asst_id,
            details,
            dry_run=batch.dry_run,
            all_or_nothing=batch.all_or_nothing,
        )
        result = await svc.batch_create(
            db,
            CALLER,
            svc.BatchCreateRequest(
                bk_obj_id=asst.bk_obj_id,
                bk_asst_obj_id=asst.bk_asst_obj_id,
                bk_obj_asst_id=asst.bk_obj_asst_id,
                details=[svc.Detail(s, d) for s, d in details],
                dry_run=batch.dry_run,
                policy=(
                    svc.ErrorPolicy.ALL_OR_NOTHING
                    if batch.all_or_nothing
                    else svc.ErrorPolicy.PARTIAL
                ),
            ),
        )

        # Per index: the same error, or passed; created exactly when the reference writes.
        assert [item.index for item in result.items] == list(range(len(details))), where
        actual = [None if item.error is None else item.error.value for item in result.items]
        assert actual == expected, where
        created_flags = [item.association is not None for item in result.items]
        assert created_flags == [code is None and expect_written for code in expected], where
        assert result.written == expect_written, where
        seen.update(
            f"{asst.mapping} {'created' if flag else code or 'passed, not written'}"
            for code, flag in zip(expected, created_flags, strict=True)
        )
        for item, (src, dest) in zip(result.items, details, strict=True):
            assert tuple(item.detail) == (src, dest), where
            if item.association is not None:
                a = item.association
                assert (a.bk_obj_asst_id, a.bk_inst_id, a.bk_asst_inst_id) == (
                    asst.bk_obj_asst_id,
                    src,
                    dest,
                ), where
                assert (a.bk_obj_id, a.bk_asst_obj_id, a.bk_asst_id) == (
                    asst.bk_obj_id,
                    asst.bk_asst_obj_id,
                    kind,
                ), where

        # The reply maps: keys sorted as strings, upstream's texts in both languages.
        for language in (ZH, EN):
            messages = result.error_msg(language)
            assert messages == expected_messages(expected, asst, language), where
            assert list(messages) == sorted(messages), where
        created = result.success_created()
        assert list(created) == sorted(created), where
        assert sorted(created, key=int) == [
            str(i) for i, flag in enumerate(created_flags) if flag
        ], where
        new_ids = list(created.values())
        assert len(set(new_ids)) == len(new_ids), where
        for index, new_id in created.items():
            src, dest = details[int(index)]
            ids_by_triple[(asst.bk_obj_asst_id, src, dest)] = new_id

        # The database holds exactly the reference's associations, each row once, with the
        # id the reply gave it and the model association's fields copied onto it.
        rows = await _stored_rows(db, asst_ids)
        assert sorted(row[:3] for row in rows) == sorted(reference.associations), where
        for bk_obj_asst_id, src, dest, row_id, obj, asst_obj, row_kind, mapping in rows:
            stored_asst = reference.model_associations[bk_obj_asst_id]
            assert row_id == ids_by_triple[(bk_obj_asst_id, src, dest)], where
            assert (obj, asst_obj, row_kind, mapping) == (
                stored_asst.bk_obj_id,
                stored_asst.bk_asst_obj_id,
                catalog.kinds[bk_obj_asst_id],
                stored_asst.mapping,
            ), where

        # One audit entry per created association, naming it; none for anything else.
        audited, last_audit = await _audit_created_since(db, last_audit)
        assert sorted(audited) == sorted(new_ids), where
    return seen


def _batches(*batches) -> tuple[Batch, ...]:
    """Explicit batches: (slot, details) or (slot, details, dry_run, all_or_nothing)."""
    return tuple(Batch(b[0], tuple(b[1]), *(b[2:] or (False, False))) for b in batches)


A0, A1, A2 = ("a", 0), ("a", 1), ("a", 2)
B0, B1, B2, B3 = ("b", 0), ("b", 1), ("b", 2), ("b", 3)
FULL = {"a": 4, "b": 4, "c": 2}
# The cases where the stored state, not the batch itself, decides; rare among random draws.
EXPLICIT = [
    # 1:1: a new source for a target stored earlier, then a stored source with a new target.
    Scenario(
        ("1:1", "1:n", "n:n", "1:1", "1:1"),
        FULL,
        _batches((0, [(A0, B0)]), (0, [(A1, B0), (A1, B1)]), (0, [(A0, B2), (A2, B2)])),
    ),
    # 1:n: a stored target meets a new source; a stored source takes more targets.
    Scenario(
        ("1:1", "1:n", "n:n", "1:n", "1:n"),
        FULL,
        _batches((1, [(A0, B0), (A0, B1)]), (1, [(A1, B0), (A1, B2), (A0, B2), (A0, B3)])),
    ),
    # n:n: only the exact stored pair is refused.
    Scenario(
        ("1:1", "1:n", "n:n", "n:n", "n:n"),
        FULL,
        _batches((2, [(A0, B0)]), (2, [(A0, B0), (A0, B1), (A0, B1), (A1, B0)])),
    ),
    # A model associated with itself, 1:1: an instance may be a source and a target once each.
    Scenario(
        ("1:1", "1:n", "n:n", "1:1", "n:n"),
        FULL,
        _batches((3, [(B0, B1)]), (3, [(B1, B2), (B2, B1), (B0, B0), (B3, B3), (B3, B0)])),
    ),
    # Ids no instance of the model has: extremes, zero, negatives, the demo's, the hole 12.
    Scenario(
        ("1:1", "1:n", "n:n", "n:n", "n:n"),
        FULL,
        _batches(
            (0, [(2**63 - 1, B0), (A0, -(2**63)), (-1, 0), (11, 21), (A0, 12), (B0, A0)]),
            (4, [(A0, ("c", 1)), (A0, B0), (A0, 41)]),
        ),
    ),
    # A dry run and an all-or-nothing batch with a failure write nothing; then it is written.
    Scenario(
        ("1:1", "1:n", "n:n", "n:n", "n:n"),
        FULL,
        _batches(
            (2, [(A0, B0), (A0, B1)], True, False),
            (2, [(A0, B0), (A0, B0)], False, True),
            (2, [(A0, B0), (A1, B1)], True, True),
            (2, [(A0, B0), (A1, B1)], False, True),
        ),
    ),
]


def _with_explicit_examples(test):
    for scenario in reversed(EXPLICIT):
        test = example(scenario=scenario)(test)
    return test


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@_with_explicit_examples
@given(scenario=scenarios())
def test_batch_create_matches_the_per_item_reference(harness, scenario):
    seen = harness.loop.run(_check_example(harness.db, harness.catalog, scenario))
    for outcome in sorted(seen):
        event(outcome)


# ---------------------------------------------------------------------------------------------
# The reference itself, on the cases the spec spells out, so a wrong model cannot hide a
# wrong service.


def test_reference_follows_the_spec_examples():
    instances = {1: "s", 2: "s", 3: "t", 4: "t", 5: "x"}
    assts = {
        "one": ModelAsst("one", "s", "t", "1:1"),
        "many": ModelAsst("many", "s", "t", "1:n"),
        "free": ModelAsst("free", "s", "t", "n:n"),
    }
    ref = Reference(instances, assts)
    assert ref.batch_create("one", [(1, 3), (1, 3), (1, 4), (2, 3), (2, 4), (9, 4), (2, 5)]) == (
        [None, DUPLICATE, ONE_TO_ONE, ONE_TO_ONE, None, SOURCE_MISSING, TARGET_MISSING],
        True,
    )
    assert ref.batch_create("many", [(1, 3), (1, 4), (2, 3), (5, 3), (1, 3)]) == (
        [None, None, ONE_TO_MANY, SOURCE_MISSING, DUPLICATE],
        True,
    )
    assert ref.batch_create("free", [(1, 3), (2, 3), (1, 3), (3, 1)]) == (
        [None, None, DUPLICATE, SOURCE_MISSING],
        True,
    )
    before = list(ref.associations)
    assert ref.batch_create("free", [(1, 4), (1, 4)], all_or_nothing=True) == (
        [None, DUPLICATE],
        False,
    )
    assert ref.batch_create("free", [(1, 4)], dry_run=True) == ([None], False)
    assert ref.associations == before
    assert ErrorCode(DUPLICATE) is ErrorCode.ASSOCIATION_ALREADY_EXISTS
