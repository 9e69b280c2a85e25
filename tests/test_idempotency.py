"""Requests that write once, or not at all (PRODUCT section 2, "beyond upstream").

- Idempotency keys: a retry with the same key (the ``Idempotency-Key`` header on REST, the
  ``idempotencyKey`` input or the header in GraphQL) by the same caller returns the first
  reply instead of running again, also under concurrent retries; the same key with another
  request is refused (1199006, a domain result: HTTP 200 on every interface); keys belong to
  their caller and expire.
- Dry run and all-or-nothing on full 200-item batches mixing every per-item outcome (the
  small cases are in test_batch_contract.py).

Every test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from cmdbgraph.app import create_app
from cmdbgraph.db.tables import idempotency_keys, inst_associations
from cmdbgraph.services import accounts, associations, permissions
from cmdbgraph.services.caller import SYSTEM, Caller
from cmdbgraph.settings import Settings
from tests.support import upstream
from tests.support.calls import ESB_PATH, NATIVE_PATH
from tests.support.databases import new_instances, row_counts, writes_nothing
from tests.support.upstream import check_failed, invalid, item_error

MUTATION = """
mutation Batch($input: BatchCreateInstAssociationsInput!) {
  batchCreateInstAssociations(input: $input) {
    __typename
    ... on BatchCreateInstAssociationsPayload {
      createdCount failedCount written replayed successCreated errorMsg
      results {
        index ok
        association { id bkObjAsstId bkInstId bkAsstInstId creator createTime }
        error { code bkErrorCode message }
      }
    }
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message }
  }
}
"""

# How the key travels: GraphQL input field or header; REST header on either route.
KEYED_INTERFACES = ["graphql", "graphql-header", "esb", "native"]
INTERFACES = ["graphql", "esb", "native"]
REST_PATHS = {"esb": ESB_PATH, "native": NATIVE_PATH}


@dataclass(frozen=True)
class Asst:
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_obj_asst_id: str


BELONG = Asst("bk_switch", "host", "bk_switch_belong_host")  # demo, n:n
CONNECT = Asst("bk_switch", "host", "bk_switch_connect_host")  # preset, 1:n
DEFAULT = Asst("bk_router", "bk_firewall", "bk_router_default_bk_firewall")  # demo, 1:1

OK = "ok"
# Per-item outcomes: OK or upstream's code (tests/support/upstream.py).
DUPLICATE = upstream.DUPLICATE.code
SOURCE_MISSING = upstream.SOURCE_MISSING.code
TARGET_MISSING = upstream.TARGET_MISSING.code
ONE_TO_ONE = upstream.ONE_TO_ONE.code
ONE_TO_MANY = upstream.ONE_TO_MANY.code
KEY_REUSED = check_failed("Idempotency-Key")
KEY_INVALID = invalid("Idempotency-Key")


def message(code: int, asst: Asst) -> str:
    """Upstream's Chinese text of the per-item failure ``code`` (the default language)."""
    return item_error(code, asst.bk_obj_id, asst.bk_asst_obj_id).zh


# ---------------------------------------------------------------------------------------------
# Requests on every interface.


@dataclass(frozen=True)
class Who:
    app_code: str = "esb_test"
    app_secret: str = "xxx"
    username: str = "admin"


ADMIN = Who()


@dataclass(frozen=True)
class Batch:
    asst: Asst
    details: tuple[tuple[int, int], ...]
    dry_run: bool = False
    all_or_nothing: bool = False


@dataclass(frozen=True)
class Reply:
    status: int
    code: int
    message: str
    # {"success_created": ..., "error_msg": ...}, or None when refused
    data: dict | None
    # The GraphQL payload, or None on REST.
    payload: dict | None = field(default=None, compare=False)


async def send(
    client,
    interface: str,
    batch: Batch,
    key: str | None = None,
    *,
    who: Who = ADMIN,
    language: str = "zh",
) -> Reply:
    authorization = {
        "bk_app_code": who.app_code,
        "bk_app_secret": who.app_secret,
        "bk_username": who.username,
    }
    headers = {"Blueking-Language": language}
    if key is not None and interface != "graphql":
        headers["Idempotency-Key"] = key
    if interface.startswith("graphql"):
        variables = {
            "bkObjId": batch.asst.bk_obj_id,
            "bkAsstObjId": batch.asst.bk_asst_obj_id,
            "bkObjAsstId": batch.asst.bk_obj_asst_id,
            "details": [{"bkInstId": s, "bkAsstInstId": t} for s, t in batch.details],
            "dryRun": batch.dry_run,
            "errorPolicy": "ALL_OR_NOTHING" if batch.all_or_nothing else "PARTIAL",
        }
        if key is not None and interface == "graphql":
            variables["idempotencyKey"] = key
        response = await client.post(
            "/graphql",
            json={"query": MUTATION, "variables": {"input": variables}},
            headers={**headers, "X-Bkapi-Authorization": json.dumps(authorization)},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        payload = body["data"]["batchCreateInstAssociations"]
        if payload["__typename"] != "BatchCreateInstAssociationsPayload":
            return Reply(200, payload["bkErrorCode"], payload["message"], None, payload)
        check_payload(payload)
        data = {"success_created": payload["successCreated"], "error_msg": payload["errorMsg"]}
        return Reply(200, 0, "success", data, payload)

    body = {
        "bk_obj_id": batch.asst.bk_obj_id,
        "bk_asst_obj_id": batch.asst.bk_asst_obj_id,
        "bk_obj_asst_id": batch.asst.bk_obj_asst_id,
        "details": [{"bk_inst_id": s, "bk_asst_inst_id": t} for s, t in batch.details],
    }
    if batch.dry_run:
        body["dry_run"] = True
    if batch.all_or_nothing:
        body["error_policy"] = "all_or_nothing"
    if interface == "esb":
        body.update(authorization)
    else:
        headers["X-Bkapi-Authorization"] = json.dumps(authorization)
    response = await client.post(REST_PATHS[interface], json=body, headers=headers)
    envelope = response.json()
    code_key, message_key = (
        ("code", "message") if interface == "esb" else ("bk_error_code", "bk_error_msg")
    )
    code = envelope[code_key]
    assert envelope["result"] is (code == 0)
    return Reply(response.status_code, code, envelope[message_key], envelope["data"])


def check_payload(payload: dict) -> None:
    """The per-index results and the maps of one GraphQL payload agree."""
    results = payload["results"]
    assert [r["index"] for r in results] == list(range(len(results)))
    assert payload["successCreated"] == {
        str(r["index"]): r["association"]["id"] for r in results if r["association"]
    }
    assert payload["errorMsg"] == {
        str(r["index"]): r["error"]["message"] for r in results if r["error"]
    }
    assert all(r["ok"] is (r["error"] is None) for r in results)


def assert_refused(reply: Reply, expected: tuple[int, str, str], language: str, status: int):
    code, zh, en = expected
    assert (reply.code, reply.message) == (code, en if language == "en" else zh)
    assert reply.data is None
    assert reply.status == status


# ---------------------------------------------------------------------------------------------
# The database.


async def stored_keys(db) -> list[tuple[str, datetime, datetime]]:
    k = idempotency_keys.c
    async with db.read() as conn:
        rows = await conn.execute(select(k.key, k.create_time, k.expires_at).order_by(k.key))
        return [tuple(row) for row in rows]


async def store(db, asst: Asst, pairs) -> None:
    pairs = [associations.Detail(*p) for p in pairs]
    if not pairs:
        return
    result = await associations.batch_create(
        db,
        SYSTEM,
        associations.BatchCreateRequest(
            asst.bk_obj_id, asst.bk_asst_obj_id, asst.bk_obj_asst_id, pairs
        ),
    )
    assert result.failed_count == 0, result.error_msg("en")


# Among the demo instances: two new associations and one that fails (there is no instance 12).
MIXED = Batch(BELONG, ((11, 21), (12, 21), (13, 22)))
MIXED_ERRORS = {"1": "关联实例不存在"}


# ---------------------------------------------------------------------------------------------
# 1. The same key twice: created once, answered twice the same.


@pytest.mark.parametrize("interface", KEYED_INTERFACES)
async def test_a_retry_with_the_same_key_gets_the_first_reply(client, db, interface):
    before = await row_counts(db)
    first = await send(client, interface, MIXED, "retry-1")
    assert first.code == 0 and first.data["error_msg"] == MIXED_ERRORS
    assert list(first.data["success_created"]) == ["0", "2"]
    assert await row_counts(db) == (before[0] + 2, before[1] + 2)

    second = await send(client, interface, MIXED, "retry-1")
    assert second == first
    assert await row_counts(db) == (before[0] + 2, before[1] + 2)
    if interface.startswith("graphql"):
        assert (first.payload["replayed"], second.payload["replayed"]) == (False, True)
        assert {**second.payload, "replayed": False} == first.payload

    # The stored reply speaks the language of whoever asks again.
    in_english = await send(client, interface, MIXED, "retry-1", language="en")
    assert in_english.data == {
        "success_created": first.data["success_created"],
        "error_msg": {"1": "the association inst is not exist"},
    }

    # Without the key the same request runs again: its pairs exist now.
    unkeyed = await send(client, interface, MIXED)
    assert unkeyed.data == {
        "success_created": {},
        "error_msg": {
            "0": message(DUPLICATE, BELONG),
            **MIXED_ERRORS,
            "2": message(DUPLICATE, BELONG),
        },
    }
    assert await row_counts(db) == (before[0] + 2, before[1] + 2)


@pytest.mark.parametrize("interface", KEYED_INTERFACES)
async def test_concurrent_retries_create_once_and_answer_alike(client, db, interface):
    details = tuple((s, t) for s in (11, 13, 14) for t in (21, 22, 23)) + ((12, 21),)
    batch = Batch(BELONG, details)
    before = await row_counts(db)
    replies = await asyncio.wait_for(
        asyncio.gather(*(send(client, interface, batch, "parallel-1") for _ in range(8))),
        timeout=60,
    )
    assert await row_counts(db) == (before[0] + 9, before[1] + 9)
    first = replies[0]
    assert first.code == 0
    assert list(first.data["success_created"]) == [str(i) for i in range(9)]
    assert first.data["error_msg"] == {"9": "关联实例不存在"}
    assert all(reply == first for reply in replies)
    if interface.startswith("graphql"):
        assert sorted(r.payload["replayed"] for r in replies) == [False] + [True] * 7
        assert all(
            {**r.payload, "replayed": None} == {**first.payload, "replayed": None} for r in replies
        )
    assert len(await stored_keys(db)) == 1
    async with db.read() as conn:
        ids = set(
            (
                await conn.execute(
                    select(inst_associations.c.id).where(
                        inst_associations.c.bk_obj_asst_id == BELONG.bk_obj_asst_id
                    )
                )
            ).scalars()
        )
    assert ids == set(first.data["success_created"].values())


@pytest.mark.parametrize("interface", KEYED_INTERFACES)
async def test_concurrent_requests_sharing_a_key_but_not_a_body(client, db, interface):
    """Two different requests (on two model associations, so no lock orders them) race for
    one key: the first to finish owns it, its retries replay, the other is refused."""
    bodies = [Batch(BELONG, ((11, 21), (13, 22))), Batch(DEFAULT, ((31, 41),))]
    before = await row_counts(db)
    replies = await asyncio.wait_for(
        asyncio.gather(*(send(client, interface, bodies[i % 2], "contested") for i in range(8))),
        timeout=60,
    )
    won = {i % 2 for i, reply in enumerate(replies) if reply.code == 0}
    assert len(won) == 1, replies
    (winner,) = won
    for i, reply in enumerate(replies):
        if i % 2 == winner:
            assert reply == replies[winner]
        else:
            assert_refused(reply, KEY_REUSED, "zh", 200)
    created = len(bodies[winner].details)
    assert list(replies[winner].data["success_created"]) == [str(i) for i in range(created)]
    assert await row_counts(db) == (before[0] + created, before[1] + created)


OTHER_REQUESTS = [
    pytest.param(Batch(BELONG, ((11, 21), (12, 21), (14, 22))), id="other-details"),
    pytest.param(Batch(BELONG, ((13, 22), (12, 21), (11, 21))), id="same-details-reordered"),
    pytest.param(Batch(BELONG, MIXED.details[:2]), id="fewer-details"),
    pytest.param(Batch(BELONG, MIXED.details, all_or_nothing=True), id="other-policy"),
    pytest.param(Batch(DEFAULT, ((31, 41),)), id="other-model-association"),
]


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("interface", KEYED_INTERFACES)
@pytest.mark.parametrize("other", OTHER_REQUESTS)
async def test_the_same_key_with_another_request_is_refused(client, db, interface, other, language):
    first = await send(client, interface, MIXED, "reused-1")
    assert first.code == 0
    async with writes_nothing(db):
        refused = await send(client, interface, other, "reused-1", language=language)
    assert_refused(refused, KEY_REUSED, language, 200)
    if interface.startswith("graphql"):
        assert refused.payload["code"] == "PARAMETER_CHECK_FAILED"
    # The first request's reply is still the one kept for the key.
    assert await send(client, interface, MIXED, "reused-1") == first


@pytest.mark.parametrize("interface", KEYED_INTERFACES)
async def test_a_refused_request_does_not_take_its_key(client, db, interface):
    unknown = Batch(Asst("bk_switch", "host", "bk_switch_run_host"), MIXED.details)
    async with writes_nothing(db):
        refused = await send(client, interface, unknown, "refused-1")
    assert (refused.code, refused.message) == (1101046, "模型的关联关系不存在")
    assert await stored_keys(db) == []
    fixed = await send(client, interface, MIXED, "refused-1")
    assert list(fixed.data["success_created"]) == ["0", "2"]


@pytest.mark.parametrize("interface", KEYED_INTERFACES)
async def test_keys_belong_to_their_caller(client, db, interface):
    await accounts.create_app(db, "idempotency_other_app", "Other-App-Secret-1")
    other_app = Who("idempotency_other_app", "Other-App-Secret-1", "admin")
    other_user = Who(username="xxx")
    before = await row_counts(db)

    mine = await send(client, interface, MIXED, "shared-key")
    assert list(mine.data["success_created"]) == ["0", "2"]

    # Another user of the same app: the key is free for a request of its own...
    theirs = await send(client, interface, Batch(BELONG, ((14, 23),)), "shared-key", who=other_user)
    assert (theirs.code, list(theirs.data["success_created"])) == (0, ["0"])
    # ...and another app with the same user runs my request anew: its pairs exist now.
    again = await send(client, interface, MIXED, "shared-key", who=other_app)
    assert again.data == {
        "success_created": {},
        "error_msg": {
            "0": message(DUPLICATE, BELONG),
            **MIXED_ERRORS,
            "2": message(DUPLICATE, BELONG),
        },
    }
    if interface.startswith("graphql"):
        assert (theirs.payload["replayed"], again.payload["replayed"]) == (False, False)
    assert await row_counts(db) == (before[0] + 3, before[1] + 3)

    # Each caller's retry gets its own first reply.
    assert await send(client, interface, MIXED, "shared-key") == mine
    assert (
        await send(client, interface, Batch(BELONG, ((14, 23),)), "shared-key", who=other_user)
        == theirs
    )
    assert await send(client, interface, MIXED, "shared-key", who=other_app) == again
    assert len(await stored_keys(db)) == 3


@pytest.mark.parametrize("interface", KEYED_INTERFACES)
async def test_a_key_expires_after_the_configured_time(database_url, db, interface):
    app = create_app(Settings(database_url=database_url, idempotency_ttl_seconds=1), db=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        before = await row_counts(db)
        first = await send(client, interface, MIXED, "short-lived")
        ((_, created, expires),) = await stored_keys(db)
        assert expires - created == timedelta(seconds=1)
        assert await send(client, interface, MIXED, "short-lived") == first

        # A bounded wait, just past the expiry.
        delay = (expires - datetime.now(UTC)).total_seconds() + 0.05
        assert delay <= 1.05
        await asyncio.sleep(max(delay, 0))

        after = await send(client, interface, MIXED, "short-lived")
        assert after.data == {
            "success_created": {},
            "error_msg": {
                "0": message(DUPLICATE, BELONG),
                **MIXED_ERRORS,
                "2": message(DUPLICATE, BELONG),
            },
        }
        if interface.startswith("graphql"):
            assert after.payload["replayed"] is False
        assert await row_counts(db) == (before[0] + 2, before[1] + 2)
        # The key now holds the new reply, with a new expiry.
        ((_, renewed, _),) = await stored_keys(db)
        assert renewed > created
        assert await send(client, interface, MIXED, "short-lived") == after


CALLER = Caller(username="admin", app_code="esb_test", request_id="idempotency")


def keyed(key: str, details=MIXED.details) -> associations.BatchCreateRequest:
    return associations.BatchCreateRequest(
        BELONG.bk_obj_id,
        BELONG.bk_asst_obj_id,
        BELONG.bk_obj_asst_id,
        [associations.Detail(*d) for d in details],
        idempotency_key=key,
    )


def outcomes(result: associations.BatchCreateResult) -> list:
    return [
        (item.index, item.error, item.association.id if item.association else None)
        for item in result.items
    ]


async def expire_the_only_key(db) -> str:
    """Move the expiry of the one stored key into the past; returns the key as stored (its
    storage form is the service's business, so the test does not build it)."""
    ((stored, _, _),) = await stored_keys(db)
    async with db.write() as conn:
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == stored)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    return stored


async def test_service_keys_expire_and_expired_keys_are_swept(db):
    ttl = timedelta(minutes=5)
    first = await associations.batch_create(db, CALLER, keyed("svc-1"), idempotency_ttl=ttl)
    assert not first.replayed and first.created_count == 2
    ((_, created, expires),) = await stored_keys(db)
    assert expires - created == ttl

    replay = await associations.batch_create(db, CALLER, keyed("svc-1"), idempotency_ttl=ttl)
    assert replay.replayed and outcomes(replay) == outcomes(first)
    assert replay.model_association == first.model_association

    await expire_the_only_key(db)
    before = await row_counts(db)
    rerun = await associations.batch_create(db, CALLER, keyed("svc-1"), idempotency_ttl=ttl)
    assert not rerun.replayed
    assert [item.error for item in rerun.items] == [
        associations.ErrorCode.ASSOCIATION_ALREADY_EXISTS,
        associations.ErrorCode.SOURCE_INSTANCE_NOT_FOUND,
        associations.ErrorCode.ASSOCIATION_ALREADY_EXISTS,
    ]
    assert await row_counts(db) == before
    # The rerun's reply replaced the expired one, with a new expiry.
    ((_, _, renewed),) = await stored_keys(db)
    assert renewed > expires
    again = await associations.batch_create(db, CALLER, keyed("svc-1"), idempotency_ttl=ttl)
    assert again.replayed and outcomes(again) == outcomes(rerun)

    # Storing a reply sweeps every expired key, whoever's it is.
    expired = await expire_the_only_key(db)
    other = await associations.batch_create(
        db, CALLER, keyed("svc-2", ((14, 23),)), idempotency_ttl=ttl
    )
    assert other.created_count == 1
    (remaining,) = [key for key, _, _ in await stored_keys(db)]
    assert remaining != expired
    again = await associations.batch_create(
        db, CALLER, keyed("svc-2", ((14, 23),)), idempotency_ttl=ttl
    )
    assert again.replayed and outcomes(again) == outcomes(other)


@pytest.mark.parametrize("interface", KEYED_INTERFACES)
async def test_a_dry_run_neither_stores_nor_replays_its_key(client, db, interface):
    async with writes_nothing(db):
        dry = await send(client, interface, Batch(BELONG, MIXED.details, dry_run=True), "dry-1")
    assert dry.data == {"success_created": {}, "error_msg": MIXED_ERRORS}
    assert await stored_keys(db) == []
    real = await send(client, interface, MIXED, "dry-1")
    assert list(real.data["success_created"]) == ["0", "2"]
    if interface.startswith("graphql"):
        assert real.payload["replayed"] is False


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("interface", KEYED_INTERFACES)
@pytest.mark.parametrize("key", ["k" * 201, "x" * 300], ids=["201-chars", "300-chars"])
async def test_an_overlong_key_is_refused(client, db, interface, key, language):
    async with writes_nothing(db):
        reply = await send(client, interface, MIXED, key, language=language)
    assert_refused(reply, KEY_INVALID, language, 200)
    assert await stored_keys(db) == []


async def test_a_non_printable_key_is_refused(client, db):
    async with writes_nothing(db):
        reply = await send(client, "graphql", MIXED, "tab\tkey")
    assert_refused(reply, KEY_INVALID, "zh", 200)


@pytest.mark.parametrize("interface", KEYED_INTERFACES)
async def test_the_longest_key_of_the_longest_named_caller_works(client, db, interface):
    """Keys of up to 200 characters are accepted, whatever the length of the caller's names
    (an app code and a user name are up to 64 characters each)."""
    app_code, username = "a" * 64, "u" * 64
    await accounts.create_app(db, app_code, "Long-Names-Secret-1")
    await accounts.create_user(db, username)
    await accounts.add_grant(db, username, permissions.ALL_MODELS)
    who = Who(app_code, "Long-Names-Secret-1", username)
    key = "k" * 200
    first = await send(client, interface, MIXED, key, who=who)
    assert first.code == 0, first
    assert list(first.data["success_created"]) == ["0", "2"]
    assert await send(client, interface, MIXED, key, who=who) == first


# ---------------------------------------------------------------------------------------------
# 2. Dry run and all-or-nothing on 200-item batches.


@dataclass
class Mixed:
    """A 200-item batch: what to store first, the details, and each index's expected outcome."""

    asst: Asst
    stored: list[tuple[int, int]]
    details: list[tuple[int, int]]
    expected: list


def round_robin(*blocks: list[tuple[tuple[int, int], object]]) -> list:
    """One item of each block in turn; the first block's k-th item comes before the k-th of
    the others, so those may depend on it (repeat it, or take its slot)."""
    merged = []
    for k in range(max(len(b) for b in blocks)):
        merged.extend(block[k] for block in blocks if k < len(block))
    return merged


def mixed_batch(mapping: str, s: list[int], t: list[int]) -> Mixed:
    """Every per-item outcome the mapping allows, with ``s`` sources and ``t`` targets (200
    each); 12 is no instance at all, and an instance of the wrong model is missing too."""

    def block(pairs, outcome):
        return [(pair, outcome) for pair in pairs]

    ten = range(10)
    source_missing = block([(12 if k % 2 else t[190 + k], t[190 + k]) for k in ten], SOURCE_MISSING)
    target_missing = block([(s[190 + k], 12 if k % 2 else s[190 + k]) for k in ten], TARGET_MISSING)
    if mapping == "n:n":
        ok = [(s[i // 10], t[i % 10]) for i in range(150)]
        stored = [(s[20 + k], t[20 + k]) for k in ten]
        blocks = [
            block(ok, OK),
            block(ok[:10], DUPLICATE),
            block(stored, DUPLICATE),
            source_missing,
            target_missing,
            block([(12, 12)] * 10, SOURCE_MISSING),
        ]
        asst = BELONG
    elif mapping == "1:n":
        ok = [(s[i % 20], t[i]) for i in range(140)]
        stored = [(s[0], t[150 + k]) for k in ten]
        blocks = [
            block(ok, OK),
            block([(s[(k + 1) % 20], t[k]) for k in ten], ONE_TO_MANY),
            block(stored, DUPLICATE),
            block([(s[1], t[150 + k]) for k in ten], ONE_TO_MANY),
            block(ok[:10], DUPLICATE),
            source_missing,
            target_missing,
        ]
        asst = CONNECT
    else:
        ok = [(s[i], t[i]) for i in range(140)]
        stored = [(s[160 + k], t[160 + k]) for k in ten]
        blocks = [
            block(ok, OK),
            block([(s[k], t[140 + k]) for k in ten], ONE_TO_ONE),
            block([(s[140 + k], t[k]) for k in ten], ONE_TO_ONE),
            block(stored, DUPLICATE),
            block(
                [(s[160 + k], t[180 + k]) for k in range(5)]
                + [(s[180 + k], t[165 + k]) for k in range(5)],
                ONE_TO_ONE,
            ),
            source_missing,
            target_missing,
        ]
        asst = DEFAULT
    merged = round_robin(*blocks)
    assert len(merged) == 200
    return Mixed(asst, stored, [pair for pair, _ in merged], [outcome for _, outcome in merged])


MAPPINGS = {"n:n": BELONG, "1:n": CONNECT, "1:1": DEFAULT}


async def prepare(db, mapping: str) -> Mixed:
    asst = MAPPINGS[mapping]
    sources = await new_instances(db, asst.bk_obj_id, f"mixed-{mapping[0]}-src", 200)
    targets = await new_instances(db, asst.bk_asst_obj_id, f"mixed-{mapping[0]}-dest", 201)
    mixed = mixed_batch(mapping, sources, targets)
    await store(db, asst, mixed.stored)
    return mixed


def per_index(reply: Reply, count: int) -> list:
    """Each index's outcome as the caller sees it: OK, or its error message."""
    errors = reply.data["error_msg"]
    return [errors.get(str(i), OK) for i in range(count)]


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("mapping", list(MAPPINGS))
async def test_dry_run_of_200_mixed_items_matches_the_real_run(client, db, interface, mapping):
    mixed = await prepare(db, mapping)
    expected = [OK if e == OK else message(e, mixed.asst) for e in mixed.expected]
    assert {e for e in mixed.expected} >= {OK, DUPLICATE, SOURCE_MISSING, TARGET_MISSING}
    created = mixed.expected.count(OK)

    async with writes_nothing(db):
        dry = await send(client, interface, Batch(mixed.asst, tuple(mixed.details), dry_run=True))
    before = await row_counts(db)
    real = await send(client, interface, Batch(mixed.asst, tuple(mixed.details)))

    assert per_index(dry, 200) == per_index(real, 200) == expected
    assert dry.data["success_created"] == {}
    assert sorted(real.data["success_created"], key=int) == [
        str(i) for i, e in enumerate(mixed.expected) if e == OK
    ]
    assert await row_counts(db) == (before[0] + created, before[1] + created)
    if interface == "graphql":

        def verdicts(reply):
            return [(r["index"], r["ok"], r["error"]) for r in reply.payload["results"]]

        assert verdicts(dry) == verdicts(real)
        assert all(r["association"] is None for r in dry.payload["results"])
        assert (dry.payload["written"], real.payload["written"]) == (False, True)
        assert (dry.payload["createdCount"], real.payload["createdCount"]) == (0, created)
        assert dry.payload["failedCount"] == real.payload["failedCount"] == 200 - created


BAD_ITEMS = [
    pytest.param(lambda s, t: (12, t[137]), SOURCE_MISSING, id="source-missing"),
    pytest.param(lambda s, t: (s[0], t[200]), DUPLICATE, id="duplicate-of-stored"),
    pytest.param(lambda s, t: (s[5], t[3]), ONE_TO_MANY, id="one-to-many-in-batch"),
    pytest.param(lambda s, t: (s[137 % 20], 12), TARGET_MISSING, id="target-missing"),
]


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize(("bad", "code"), BAD_ITEMS)
async def test_all_or_nothing_200_items_with_one_bad_writes_nothing(
    client, db, interface, bad, code
):
    sources = await new_instances(db, "bk_switch", "aon-src", 20)
    targets = await new_instances(db, "host", "aon-dest", 201)
    await store(db, CONNECT, [(sources[0], targets[200])])
    details = [(sources[i % 20], targets[i]) for i in range(200)]
    details[137] = bad(sources, targets)
    async with writes_nothing(db):
        reply = await send(client, interface, Batch(CONNECT, tuple(details), all_or_nothing=True))
    assert reply.code == 0
    assert reply.data == {"success_created": {}, "error_msg": {"137": message(code, CONNECT)}}
    if interface == "graphql":
        results = reply.payload["results"]
        assert [r["ok"] for r in results] == [i != 137 for i in range(200)]
        assert all(r["association"] is None for r in results)
        assert results[137]["error"]["bkErrorCode"] == code
        assert reply.payload["written"] is False
        assert (reply.payload["createdCount"], reply.payload["failedCount"]) == (0, 1)

    # Without the bad item, the same policy writes all 199.
    del details[137]
    before = await row_counts(db)
    accepted = await send(client, interface, Batch(CONNECT, tuple(details), all_or_nothing=True))
    assert accepted.data["error_msg"] == {}
    assert len(accepted.data["success_created"]) == 199
    assert await row_counts(db) == (before[0] + 199, before[1] + 199)
