"""The idempotency store: a key the caller chose, scoped to the caller, remembering the reply
of the request that first used it (in the same transaction as that request's writes)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.tables import idempotency_keys
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import CmdbError, ErrorCode
from cmdbgraph.services.limits import MAX_IDEMPOTENCY_KEY


def acceptable(key: str) -> bool:
    """A key may be 1 to 200 printable characters."""
    return 0 < len(key) <= MAX_IDEMPOTENCY_KEY and key.isprintable()


def stored_key(caller: Caller, key: str) -> str:
    """How ``key`` is stored: scoped by app and user (keys are the caller's own), as a
    fixed-size digest."""
    scoped = f"{caller.app_code}\x1f{caller.username}\x1f{key}"
    return hashlib.sha256(scoped.encode()).hexdigest()


async def stored_reply(conn: AsyncConnection, key: str, fingerprint: str) -> dict | None:
    """The reply stored under ``key``; None when there is none (or it expired). The same key
    with another request (``fingerprint``) is refused with 1199006."""
    row = (
        await conn.execute(
            select(
                idempotency_keys.c.request_hash,
                idempotency_keys.c.reply,
                idempotency_keys.c.expires_at,
            ).where(idempotency_keys.c.key == key)
        )
    ).first()
    if row is None:
        return None
    if row.expires_at <= datetime.now(UTC):
        await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.key == key))
        return None
    if row.request_hash != fingerprint:
        raise CmdbError(ErrorCode.PARAMETER_CHECK_FAILED, ("Idempotency-Key",))
    return row.reply


async def store_reply(
    conn: AsyncConnection, key: str, fingerprint: str, reply: dict, ttl: timedelta
) -> None:
    """Remember ``reply`` under ``key`` for ``ttl``."""
    now = datetime.now(UTC)
    # Expired keys are swept by the requests that use keys, so the table stays small.
    await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.expires_at <= now))
    await conn.execute(
        insert(idempotency_keys).values(
            key=key,
            request_hash=fingerprint,
            reply=reply,
            create_time=now,
            expires_at=now + ttl,
        )
    )
