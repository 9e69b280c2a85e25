"""The set-based batch create against a plain per-item model of upstream's algorithm.

``Reference`` walks the details one at a time exactly as BlueKing CMDB does (behaviour spec,
section 3): every accepted item is stored before the next one is checked. Hypothesis draws
models, model associations of every mapping, a pool of instances and a sequence of batches
whose ids come from a small space (real instances of the right and of the wrong model, demo
instances, unknown, zero, negative and extreme ids), so duplicates, mapping conflicts and
missing instances are frequent. Every batch goes through the service and through the model;
the per-index outcome, the messages, the stored rows and the audit entries must agree.

Hypothesis runs every example in one test, so the examples share the test's database: each
example creates its own models (a counter suffix keeps their ids apart) and only looks at the
rows of its own model associations.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import threading
from dataclasses import dataclass, field

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

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
from cmdbgraph.services.errors import EN, ZH, ErrorCode
from cmdbgraph.services.instances import NewInstance, create_instances
from cmdbgraph.settings import Settings

# The demo user "admin" holds the edit grant on every model: permissions are checked, and pass.
CALLER = Caller(username="admin", app_code="tests", request_id="refmodel")

DUPLICATE = 1101038
SOURCE_MISSING = 1101073
TARGET_MISSING = 1101074
ONE_TO_ONE = 1101052
ONE_TO_MANY = 1101061

# The texts of the behaviour spec, section 3, written out here rather than taken from the code.
MESSAGES = {
    ZH: {
        DUPLICATE: "关联关系 {src}->{dest} 重复",
        SOURCE_MISSING: "关联实例不存在",
        TARGET_MISSING: "被关联实例不存在",
        ONE_TO_ONE: "关联关系为1:1的，不能同时关联多个实例",
        ONE_TO_MANY: "关联关系为1:n的，不能同时关联多个源模型实例",
    },
    EN: {
        DUPLICATE: "the associations {src}->{dest} already exist",
        SOURCE_MISSING: "the association inst is not exist",
        TARGET_MISSING: "the  inst to asst  is not exist",
        ONE_TO_ONE: "can not create multiple instance association for a 1:1 association.",
        ONE_TO_MANY: (
            "The relationship is 1:n, and multiple source model instances cannot be "
            "associated at the same time."
        ),
    },
}

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
# The reference: upstream's loop, one item at a time, in the simplest form.


@dataclass(frozen=True)
class ModelAsst:
    bk_obj_asst_id: str
    bk_obj_id: str
    bk_asst_obj_id: str
    mapping: str


@dataclass
class Reference:
    """Stored instances ``{id: bk_obj_id}`` and stored associations, and upstream's loop."""

    instances: dict[int, str]
    model_associations: dict[str, ModelAsst]
    associations: list[tuple[str, int, int]] = field(default_factory=list)

    def batch_create(
        self,
        bk_obj_asst_id: str,
        details: list[tuple[int, int]],
        *,
        dry_run: bool = False,
        all_or_nothing: bool = False,
    ) -> tuple[list[int | None], bool]:
        """Per index the error code or None (passed); and whether the passed items are written.

        Upstream writes each item before checking the next; a dry run or an all-or-nothing
        batch with a failure decides the same way on a scratch copy and keeps nothing.
        """
        asst = self.model_associations[bk_obj_asst_id]
        stored = list(self.associations)
        outcomes: list[int | None] = []
        for src, dest in details:
            if (bk_obj_asst_id, src, dest) in stored:
                outcomes.append(DUPLICATE)
            elif self.instances.get(src) != asst.bk_obj_id:
                outcomes.append(SOURCE_MISSING)
            elif self.instances.get(dest) != asst.bk_asst_obj_id:
                outcomes.append(TARGET_MISSING)
            elif asst.mapping == "1:1" and any(
                a == bk_obj_asst_id and (s == src or d == dest) for a, s, d in stored
            ):
                outcomes.append(ONE_TO_ONE)
            elif asst.mapping == "1:n" and any(
                a == bk_obj_asst_id and d == dest for a, _, d in stored
            ):
                outcomes.append(ONE_TO_MANY)
            else:
                outcomes.append(None)
                stored.append((bk_obj_asst_id, src, dest))
        written = not dry_run and (not all_or_nothing or all(o is None for o in outcomes))
        if written:
            self.associations = stored
        return outcomes, written


def expected_messages(
    outcomes: list[int | None], asst: ModelAsst, language: str
) -> dict[str, str]:
    texts = MESSAGES[language]
    return {
        str(index): texts[code].format(src=asst.bk_obj_id, dest=asst.bk_asst_obj_id)
        for index, code in enumerate(outcomes)
        if code is not None
    }


# ---------------------------------------------------------------------------------------------
# What hypothesis draws. Instances are named by (model, position) and special ids by value;
# they become real ids once the example has created its instances.

MODELS = ("a", "b", "c")
# (source model, association kind, target model, mapping; None: drawn)
ASSOCIATIONS = (
    ("a", "default", "b", "1:1"),
    ("a", "connect", "b", "1:n"),
    ("a", "belong", "b", "n:n"),
    ("b", "group", "b", None),  # an association of a model with itself
    ("a", "run", "c", None),
)
MAPPINGS = ("1:1", "1:n", "n:n")


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
        "a": draw(st.integers(1, 4)),
        "b": draw(st.integers(1, 4)),
        "c": draw(st.integers(0, 2)),
    }
    any_instance = [(model, i) for model in MODELS for i in range(counts[model])]

    def instance_of(model: str):
        # Mostly an instance of the model the association wants (when it has any), otherwise
        # any instance of the example or a special id.
        own = [(model, i) for i in range(counts[model])]
        pools = [own, own, own, any_instance, SPECIAL_IDS] if own else [any_instance, SPECIAL_IDS]
        return st.sampled_from(pools).flatmap(st.sampled_from)

    batches = []
    # The first batches build the stored state, the last one is checked against it; all of
    # them are compared with the reference.
    for _ in range(draw(st.integers(1, 4))):
        association = draw(st.integers(0, len(ASSOCIATIONS) - 1))
        src_model, _, dest_model, _ = ASSOCIATIONS[association]
        details: list[tuple[object, object]] = []
        for _ in range(draw(st.integers(1, 10))):
            if details and draw(st.integers(0, 4)) == 0:
                # Repeat an earlier detail of this batch, or swap one of its ends.
                src, dest = draw(st.sampled_from(details))
                how = draw(st.sampled_from(["same", "new_source", "new_target"]))
                if how == "new_source":
                    src = draw(instance_of(src_model))
                elif how == "new_target":
                    dest = draw(instance_of(dest_model))
                details.append((src, dest))
            else:
                details.append((draw(instance_of(src_model)), draw(instance_of(dest_model))))
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
# A fresh database for the test, obtained without an event loop (the test is synchronous).

_databases = itertools.count()
_examples = itertools.count()


def _run(make_coroutine):
    """Run a coroutine on its own loop in its own thread; return its result or raise."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make_coroutine())
        except BaseException as error:  # re-raised in the caller
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    if thread.is_alive():
        raise TimeoutError("the example did not finish within 120 s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture
def fresh_database_url(backend, request, tmp_path) -> str:
    """Like conftest's ``database_url`` (a copy of the migrated demo database), but sync."""
    if backend == "sqlite":
        path = tmp_path / "reference.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    server = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template")
    name = f"refmodel_{os.getpid()}_{next(_databases)}"

    async def create() -> None:
        conn = await asyncpg.connect(server.dsn())
        try:
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        finally:
            await conn.close()

    _run(create)
    return server.url(name)


# ---------------------------------------------------------------------------------------------
# One example: build the data through the services, then run every batch on both sides.


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


async def _run_example(url: str, scenario: Scenario) -> set[str]:
    db = Database(Settings(database_url=url))
    try:
        return await _check_example(db, scenario)
    finally:
        await db.dispose()


async def _check_example(db: Database, scenario: Scenario) -> set[str]:
    """Runs the scenario on both sides; returns the kinds of outcome seen (for statistics)."""
    n = next(_examples)
    model_ids = {model: f"rm{n}_{model}" for model in MODELS}
    for model, bk_obj_id in model_ids.items():
        await create_model(db, CALLER, NewModel(bk_obj_id, f"reference {model} {n}"))

    model_assts: list[ModelAsst] = []
    for (src, kind, dest, _), mapping in zip(ASSOCIATIONS, scenario.mappings, strict=True):
        created = await create_model_association(
            db,
            CALLER,
            NewModelAssociation(
                bk_obj_id=model_ids[src],
                bk_asst_obj_id=model_ids[dest],
                bk_asst_id=kind,
                mapping=mapping,
            ),
        )
        model_assts.append(
            ModelAsst(created.bk_obj_asst_id, created.bk_obj_id, created.bk_asst_obj_id, mapping)
        )
    kinds = {asst.bk_obj_asst_id: kind for asst, (_, kind, _, _) in zip(model_assts, ASSOCIATIONS, strict=True)}

    real_ids: dict[tuple[str, int], int] = {}
    stored_instances = dict(DEMO_INSTANCES)
    for model in MODELS:
        if scenario.counts[model] == 0:
            continue
        created_instances = await create_instances(
            db,
            CALLER,
            model_ids[model],
            [NewInstance(f"{model}-{i}") for i in range(scenario.counts[model])],
        )
        for i, instance in enumerate(created_instances):
            real_ids[(model, i)] = instance.bk_inst_id
            stored_instances[instance.bk_inst_id] = model_ids[model]

    def resolve(token: object) -> int:
        return real_ids[token] if isinstance(token, tuple) else token

    reference = Reference(stored_instances, {a.bk_obj_asst_id: a for a in model_assts})
    asst_ids = [a.bk_obj_asst_id for a in model_assts]
    _, last_audit = await _audit_created_since(db, 0)
    ids_by_triple: dict[tuple[str, int, int], int] = {}
    seen: set[str] = set()

    for number, batch in enumerate(scenario.batches):
        asst = model_assts[batch.association]
        details = [(resolve(s), resolve(d)) for s, d in batch.details]
        where = f"batch {number} on {asst.bk_obj_asst_id} ({asst.mapping}): {details}"

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
                    kinds[asst.bk_obj_asst_id],
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
        for bk_obj_asst_id, src, dest, row_id, obj, asst_obj, kind, mapping in rows:
            stored_asst = reference.model_associations[bk_obj_asst_id]
            assert row_id == ids_by_triple[(bk_obj_asst_id, src, dest)], where
            assert (obj, asst_obj, kind, mapping) == (
                stored_asst.bk_obj_id,
                stored_asst.bk_asst_obj_id,
                kinds[bk_obj_asst_id],
                stored_asst.mapping,
            ), where

        # One audit entry per created association, naming it; none for anything else.
        audited, last_audit = await _audit_created_since(db, last_audit)
        assert sorted(audited) == sorted(new_ids), where

    async with db.read() as conn:
        total = (
            await conn.execute(
                select(func.count())
                .select_from(inst_associations)
                .where(inst_associations.c.bk_obj_asst_id.in_(asst_ids))
            )
        ).scalar_one()
    assert total == len(reference.associations)
    return seen


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=False,
)
@given(scenario=scenarios())
def test_batch_create_matches_the_per_item_reference(fresh_database_url, scenario):
    for outcome in sorted(_run(lambda: _run_example(fresh_database_url, scenario))):
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
