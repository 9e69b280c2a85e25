"""The mapping rules and uniqueness hold under concurrency, and the database enforces them.

Many conflicting batches run at once against a 1:1, a 1:n and an n:n model association, through
one ``Database``, through several independent ones (separate engines and pools, as separate
server processes would have), and through two real server processes on the same database.
Afterwards the stored rows must respect every rule, every request must have an answer, every
created association must be reported by exactly one request and audited once, and the answers
must be those of some serial order (a request that lost a race gets the error it would have got
had it come second). Finally raw INSERTs that break a rule are refused by the database itself.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

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
from cmdbgraph.services.instances import NewInstance, create_instances
from cmdbgraph.settings import Settings
from tests.support.calls import ESB_PATH
from tests.support.reference import ModelAsst, Reference
from tests.support.servers import live_server
from tests.support.upstream import ITEM_ERRORS, item_error

# The demo user "admin" holds the edit grant on every model.
CALLER = Caller(username="admin", app_code="tests", request_id="concurrency")
SRC, DEST = "cc_src", "cc_dst"
MISSING_ID = 10**12

# Per index: (error code, None) for a failed item, (None, new id) for a created one.
Outcome = list[tuple[int | None, int | None]]


@dataclass
class Setup:
    sources: list[int]
    targets: list[int]
    assts: list[ModelAsst]  # 1:1, 1:n, n:n

    @property
    def instances(self) -> dict[int, str]:
        return {**dict.fromkeys(self.sources, SRC), **dict.fromkeys(self.targets, DEST)}


@dataclass(frozen=True)
class Request:
    asst: ModelAsst
    details: tuple[tuple[int, int], ...]


async def _prepare(db: Database, per_model: int = 4) -> Setup:
    for bk_obj_id in (SRC, DEST):
        await create_model(db, CALLER, NewModel(bk_obj_id, bk_obj_id))
    assts = []
    for kind, mapping in (("default", "1:1"), ("connect", "1:n"), ("belong", "n:n")):
        created = await create_model_association(
            db, CALLER, NewModelAssociation(SRC, DEST, kind, mapping=mapping)
        )
        assts.append(ModelAsst(created.bk_obj_asst_id, SRC, DEST, mapping))
    sources = await create_instances(
        db, CALLER, SRC, [NewInstance(f"src-{i}") for i in range(per_model)]
    )
    targets = await create_instances(
        db, CALLER, DEST, [NewInstance(f"dst-{i}") for i in range(per_model)]
    )
    return Setup([i.bk_inst_id for i in sources], [i.bk_inst_id for i in targets], assts)


def _conflicting_requests(setup: Setup, count: int, seed: int) -> list[Request]:
    """``count`` batches over a few instances: most pairs are wanted by several requests."""
    rng = random.Random(seed)
    sources = [*setup.sources, setup.targets[0]]  # an instance of the wrong model, sometimes
    targets = [*setup.targets, MISSING_ID]
    requests = []
    for i in range(count):
        details = [(rng.choice(sources), rng.choice(targets)) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.3:
            details.append(details[0])  # an in-batch duplicate
        requests.append(Request(setup.assts[i % len(setup.assts)], tuple(details)))
    return requests


def _batch_request(request: Request) -> svc.BatchCreateRequest:
    return svc.BatchCreateRequest(
        bk_obj_id=request.asst.bk_obj_id,
        bk_asst_obj_id=request.asst.bk_asst_obj_id,
        bk_obj_asst_id=request.asst.bk_obj_asst_id,
        details=[svc.Detail(s, d) for s, d in request.details],
    )


def _outcome(result: svc.BatchCreateResult) -> Outcome:
    return [
        (
            None if item.error is None else item.error.value,
            None if item.association is None else item.association.id,
        )
        for item in result.items
    ]


async def _audited_creates(db: Database) -> int:
    ae = audit_entries.c
    async with db.read() as conn:
        return (
            await conn.execute(
                select(func.count())
                .select_from(audit_entries)
                .where(ae.action == "create", ae.resource_type == "instance_association")
            )
        ).scalar_one()


async def _stored(db: Database, setup: Setup) -> list[tuple[int, str, int, int, str]]:
    ia = inst_associations.c
    async with db.read() as conn:
        rows = await conn.execute(
            select(ia.id, ia.bk_obj_asst_id, ia.bk_inst_id, ia.bk_asst_inst_id, ia.mapping).where(
                ia.bk_obj_asst_id.in_([a.bk_obj_asst_id for a in setup.assts])
            )
        )
        return [tuple(row) for row in rows]


async def _check(
    db: Database,
    setup: Setup,
    requests: list[Request],
    answers: list,
    audited_before: int,
) -> None:
    # Every request got an answer covering each of its items.
    outcomes: list[Outcome] = []
    for number, (request, answer) in enumerate(zip(requests, answers, strict=True)):
        assert not isinstance(answer, BaseException), f"request {number} raised {answer!r}"
        assert len(answer) == len(request.details), f"request {number}: {answer}"
        for code, new_id in answer:
            # Partial success: an item either failed or was created.
            assert (code is None) != (new_id is None), f"request {number}: {answer}"
        outcomes.append(answer)

    rows = await _stored(db, setup)
    triples = Counter((asst, src, dest) for _, asst, src, dest, _ in rows)
    assert all(n == 1 for n in triples.values()), f"duplicate associations: {triples}"
    mapping_of = {a.bk_obj_asst_id: a.mapping for a in setup.assts}
    for _, asst, _, _, mapping in rows:
        assert mapping == mapping_of[asst]
    sources = Counter((asst, src) for _, asst, src, _, _ in rows if mapping_of[asst] == "1:1")
    targets = Counter(
        (asst, dest) for _, asst, _, dest, _ in rows if mapping_of[asst] in ("1:1", "1:n")
    )
    assert all(n == 1 for n in sources.values()), f"1:1 source linked twice: {sources}"
    assert all(n == 1 for n in targets.values()), f"1:1 or 1:n target linked twice: {targets}"

    # Each stored association was reported created by exactly one request, with its id.
    reported: dict[tuple[str, int, int], list[tuple[int, int]]] = {}
    for number, (request, outcome) in enumerate(zip(requests, outcomes, strict=True)):
        for (src, dest), (_, new_id) in zip(request.details, outcome, strict=True):
            if new_id is not None:
                key = (request.asst.bk_obj_asst_id, src, dest)
                reported.setdefault(key, []).append((number, new_id))
    assert all(len(v) == 1 for v in reported.values()), f"created twice: {reported}"
    assert {k: v[0][1] for k, v in reported.items()} == {
        (asst, src, dest): row_id for row_id, asst, src, dest, _ in rows
    }
    total_created = sum(new_id is not None for outcome in outcomes for _, new_id in outcome)
    assert total_created == len(rows)
    assert await _audited_creates(db) - audited_before == total_created

    _check_serializable(setup, requests, outcomes)


def _check_serializable(setup: Setup, requests: list[Request], outcomes: list[Outcome]) -> None:
    """The answers are those of the requests run one after the other in some order.

    The requests that created something are ordered by the ids they got (a writer holds its
    model association while it inserts, so a later writer gets later ids); each must get what
    the per-item reference gives it on the state its predecessors left. A request that created
    nothing must match the reference on one of those intermediate states.
    """
    reference = Reference(setup.instances, {a.bk_obj_asst_id: a for a in setup.assts})
    creating = sorted(
        (number for number, outcome in enumerate(outcomes) if any(i for _, i in outcome)),
        key=lambda number: min(i for _, i in outcomes[number] if i is not None),
    )
    unplaced = {number for number, outcome in enumerate(outcomes) if number not in creating}

    def codes(number: int) -> list[int | None]:
        return [code for code, _ in outcomes[number]]

    def place_the_failed() -> None:
        for number in sorted(unplaced):
            request = requests[number]
            expected, _ = reference.batch_create(
                request.asst.bk_obj_asst_id, list(request.details), dry_run=True
            )
            if expected == codes(number):
                unplaced.discard(number)

    previous_max = {a.bk_obj_asst_id: 0 for a in setup.assts}
    for number in creating:
        place_the_failed()
        request = requests[number]
        ids = [i for _, i in outcomes[number] if i is not None]
        asst_id = request.asst.bk_obj_asst_id
        # The ids of one model association's writers do not interleave.
        assert min(ids) > previous_max[asst_id], f"request {number} interleaved: {outcomes}"
        previous_max[asst_id] = max(ids)
        expected, written = reference.batch_create(asst_id, list(request.details))
        assert written
        assert expected == codes(number), (
            f"request {number} {request} answered {outcomes[number]}, "
            f"the reference expects {expected} after {reference.associations}"
        )
    place_the_failed()
    assert not unplaced, {
        number: (requests[number], outcomes[number]) for number in sorted(unplaced)
    }


# ---------------------------------------------------------------------------------------------
# Concurrent batches inside this process: one Database, or several independent ones.


@pytest.mark.parametrize("databases", [1, 4], ids=["one-database", "four-databases"])
async def test_concurrent_conflicting_batches_keep_the_rules(db, databases):
    setup = await _prepare(db)
    audited_before = await _audited_creates(db)
    requests = _conflicting_requests(setup, count=32, seed=databases)
    pool = [db] + [
        Database(Settings(database_url=db.settings.database_url)) for _ in range(1, databases)
    ]

    async def one(number: int, request: Request) -> Outcome:
        result = await svc.batch_create(pool[number % len(pool)], CALLER, _batch_request(request))
        assert isinstance(result, svc.BatchCreateResult)
        return _outcome(result)

    try:
        answers = await asyncio.wait_for(
            asyncio.gather(
                *(one(number, request) for number, request in enumerate(requests)),
                return_exceptions=True,
            ),
            timeout=120,
        )
    finally:
        for other in pool[1:]:
            await other.dispose()
    await _check(db, setup, requests, answers, audited_before)


async def test_repeated_identical_batches_create_each_association_once(db):
    """The same batch sent by many writers at once: each pair is created by exactly one."""
    setup = await _prepare(db)
    audited_before = await _audited_creates(db)
    pool = [db, *(Database(Settings(database_url=db.settings.database_url)) for _ in range(3))]
    requests = []
    for asst in setup.assts:
        details = tuple((s, d) for s in setup.sources[:2] for d in setup.targets[:2])
        requests += [Request(asst, details)] * 8

    async def one(number: int, request: Request) -> Outcome:
        return _outcome(
            await svc.batch_create(pool[number % len(pool)], CALLER, _batch_request(request))
        )

    try:
        answers = await asyncio.wait_for(
            asyncio.gather(
                *(one(number, request) for number, request in enumerate(requests)),
                return_exceptions=True,
            ),
            timeout=120,
        )
    finally:
        for other in pool[1:]:
            await other.dispose()
    await _check(db, setup, requests, answers, audited_before)
    rows = await _stored(db, setup)
    by_mapping = Counter(mapping for *_, mapping in rows)
    # 1:1: two disjoint pairs; 1:n: one source per target; n:n: all four pairs.
    assert by_mapping == {"1:1": 2, "1:n": 2, "n:n": 4}


# ---------------------------------------------------------------------------------------------
# Two server processes on the same database.

# Upstream's per-item texts (behaviour spec, section 3) back to their codes.
_CODES = {item_error(code, SRC, DEST).zh: code for code in ITEM_ERRORS}


def _rest_outcome(request: Request, response: httpx.Response) -> Outcome:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True and body["code"] == 0, body
    created = body["data"]["success_created"]
    errors = body["data"]["error_msg"]
    assert set(created) | set(errors) == {str(i) for i in range(len(request.details))}, body
    assert not set(created) & set(errors), body
    return [
        (None, created[str(i)]) if str(i) in created else (_CODES[errors[str(i)]], None)
        for i in range(len(request.details))
    ]


async def test_two_server_processes_keep_the_rules(db, tmp_path):
    setup = await _prepare(db)
    audited_before = await _audited_creates(db)
    requests = _conflicting_requests(setup, count=40, seed=7)
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                live_server(
                    db.settings.database_url,
                    tmp_path / f"server-{number}.log",
                    env={"CMDBGRAPH_AUTH": "false"},
                )
            )
            for number in range(2)
        ]
        async with httpx.AsyncClient(timeout=30) as client:

            async def one(number: int, request: Request) -> Outcome:
                server = servers[number % len(servers)]
                response = await client.post(
                    f"{server.url}{ESB_PATH}",
                    json={
                        "bk_app_code": "tests",
                        "bk_username": "admin",
                        "bk_obj_id": request.asst.bk_obj_id,
                        "bk_asst_obj_id": request.asst.bk_asst_obj_id,
                        "bk_obj_asst_id": request.asst.bk_obj_asst_id,
                        "details": [
                            {"bk_inst_id": s, "bk_asst_inst_id": d} for s, d in request.details
                        ],
                    },
                    headers={"X-Request-ID": f"concurrency-{number}"},
                )
                return _rest_outcome(request, response)

            answers = await asyncio.wait_for(
                asyncio.gather(
                    *(one(number, request) for number, request in enumerate(requests)),
                    return_exceptions=True,
                ),
                timeout=90,
            )
            for server in servers:
                assert server.process.poll() is None, server.log()
    logs = "\n".join(server.log() for server in servers)
    for number, answer in enumerate(answers):
        assert not isinstance(answer, BaseException), f"request {number}: {answer!r}\n{logs}"
    assert "Traceback" not in logs, logs
    await _check(db, setup, requests, answers, audited_before)


# ---------------------------------------------------------------------------------------------
# The database itself refuses rows that break a rule, whoever writes them.

_RAW_INSERT = text(
    "INSERT INTO inst_associations (bk_obj_asst_id, bk_asst_id, bk_obj_id, bk_inst_id, "
    "bk_asst_obj_id, bk_asst_inst_id, mapping, bk_supplier_account, bk_biz_id, creator, "
    "create_time) VALUES (:asst, :kind, :obj, :src, :asst_obj, :dest, :mapping, '0', 0, "
    "'raw', CURRENT_TIMESTAMP)"
)
_KINDS = {"1:1": "default", "1:n": "connect", "n:n": "belong"}


async def _raw_insert(db: Database, asst: ModelAsst, src: int, dest: int, mapping: str) -> None:
    async with db.write() as conn:
        await conn.execute(
            _RAW_INSERT,
            {
                "asst": asst.bk_obj_asst_id,
                "kind": _KINDS[asst.mapping],
                "obj": asst.bk_obj_id,
                "src": src,
                "asst_obj": asst.bk_asst_obj_id,
                "dest": dest,
                "mapping": mapping,
            },
        )


async def test_database_refuses_raw_inserts_that_break_a_rule(db):
    setup = await _prepare(db)
    one, many, free = setup.assts
    (a1, a2, a3, _), (b1, b2, b3, _) = setup.sources, setup.targets
    for asst in setup.assts:
        result = await svc.batch_create(db, CALLER, _batch_request(Request(asst, ((a1, b1),))))
        assert result.created_count == 1
    before = await _stored(db, setup)

    refused = [
        (one, a1, b2),  # 1:1: the source has an association already
        (one, a2, b1),  # 1:1: the target has one already
        (one, a1, b1),  # the same triple
        (many, a2, b1),  # 1:n: the target has a source already
        (many, a1, b1),
        (free, a1, b1),  # n:n: only the exact duplicate is refused
    ]
    for asst, src, dest in refused:
        with pytest.raises(IntegrityError):
            await _raw_insert(db, asst, src, dest, asst.mapping)
    assert await _stored(db, setup) == before

    # The same statement with rows that break nothing is accepted: the refusals above come
    # from the rules, not from the statement.
    await _raw_insert(db, one, a2, b2, "1:1")
    await _raw_insert(db, many, a1, b2, "1:n")
    await _raw_insert(db, free, a2, b1, "n:n")
    await _raw_insert(db, free, a3, b3, "n:n")
    assert len(await _stored(db, setup)) == len(before) + 4


async def test_database_refuses_a_row_whose_mapping_disagrees_with_its_model_association(db):
    """The rule follows the model association, not what a writer puts in the row's copy of
    the mapping: a 1:1 rule is not escaped by a raw row that claims ``n:n``."""
    setup = await _prepare(db)
    one, many, _ = setup.assts
    a1, a2 = setup.sources[:2]
    b1, b2 = setup.targets[:2]
    await _raw_insert(db, one, a1, b1, "1:1")
    await _raw_insert(db, many, a1, b1, "1:n")
    for asst, src, dest in ((one, a1, b2), (one, a2, b1), (many, a2, b1)):
        with pytest.raises(IntegrityError):
            await _raw_insert(db, asst, src, dest, "n:n")
