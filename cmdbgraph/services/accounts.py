"""Managing apps, users, tokens and grants (the command line and the demo data)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import apps, grants, instances, models, tokens, users
from cmdbgraph.services.hashes import hash_secret, token_digest, verify_secret
from cmdbgraph.services.permissions import ACTIONS, ALL_MODELS, EDIT, EVERYONE


@dataclass(frozen=True, slots=True)
class AppInfo:
    app_code: str
    active: bool
    create_time: datetime


@dataclass(frozen=True, slots=True)
class GrantInfo:
    id: int
    subject: str
    action: str
    bk_obj_id: str
    bk_inst_id: int


class AccountError(Exception):
    """A management request that cannot be done; the text says why, for an operator."""


async def create_app(db: Database, app_code: str, secret: str | None = None) -> str:
    """Create an app; returns its secret (generated unless given). Shown once, stored hashed."""
    if not app_code or len(app_code) > 64 or not app_code.isprintable():
        raise AccountError("an app code is 1 to 64 printable characters")
    secret = secret or secrets.token_urlsafe(24)
    try:
        async with db.write() as conn:
            await conn.execute(
                insert(apps).values(
                    app_code=app_code,
                    secret_hash=hash_secret(secret),
                    active=True,
                    create_time=datetime.now(UTC),
                )
            )
    except IntegrityError:
        raise AccountError(f"app {app_code} exists: choose another code") from None
    return secret


async def list_apps(db: Database) -> list[AppInfo]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(apps.c.app_code, apps.c.active, apps.c.create_time).order_by(apps.c.id)
        )
        return [AppInfo(*row) for row in rows]


async def revoke_app(db: Database, app_code: str) -> bool:
    async with db.write() as conn:
        result = await conn.execute(
            update(apps).where(apps.c.app_code == app_code).values(active=False)
        )
        return result.rowcount > 0


async def create_user(db: Database, username: str) -> None:
    if not username or len(username) > 64 or not username.isprintable():
        raise AccountError("a user name is 1 to 64 printable characters")
    try:
        async with db.write() as conn:
            await conn.execute(
                insert(users).values(bk_username=username, create_time=datetime.now(UTC))
            )
    except IntegrityError:
        raise AccountError(f"user {username} exists") from None


async def list_users(db: Database) -> list[str]:
    async with db.read() as conn:
        return list(
            (await conn.execute(select(users.c.bk_username).order_by(users.c.id))).scalars()
        )


async def create_token(
    db: Database,
    username: str,
    *,
    ttl: timedelta | None = timedelta(days=30),
    token: str | None = None,
) -> str:
    """Issue a token for ``username``; returns it (shown once, stored as a digest)."""
    token = token or secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with db.write() as conn:
        await _require_user(conn, username)
        await conn.execute(
            insert(tokens).values(
                token_hash=token_digest(token),
                bk_username=username,
                expires_at=None if ttl is None else now + ttl,
                revoked=False,
                create_time=now,
            )
        )
    return token


async def revoke_token(db: Database, token: str) -> bool:
    async with db.write() as conn:
        result = await conn.execute(
            update(tokens).where(tokens.c.token_hash == token_digest(token)).values(revoked=True)
        )
        return result.rowcount > 0


async def add_grant(
    db: Database, subject: str, bk_obj_id: str, bk_inst_id: int = 0, action: str = EDIT
) -> GrantInfo:
    if action not in ACTIONS:
        raise AccountError(f"no action {action}: the actions are {', '.join(ACTIONS)}")
    if not subject:
        raise AccountError("a grant names a user, or * for everyone")
    if not bk_obj_id:
        raise AccountError("a grant names a model, or * for every model")
    async with db.write() as conn:
        if subject != EVERYONE:
            await _require_user(conn, subject)
        if bk_obj_id != ALL_MODELS:
            await _require_model(conn, bk_obj_id)
        if bk_inst_id:
            await _require_instance(conn, bk_obj_id, bk_inst_id)
        existing = (
            await conn.execute(
                select(grants.c.id).where(
                    grants.c.subject == subject,
                    grants.c.action == action,
                    grants.c.bk_obj_id == bk_obj_id,
                    grants.c.bk_inst_id == bk_inst_id,
                )
            )
        ).first()
        if existing is None:
            grant_id = (
                await conn.execute(
                    insert(grants)
                    .values(
                        subject=subject,
                        action=action,
                        bk_obj_id=bk_obj_id,
                        bk_inst_id=bk_inst_id,
                        create_time=datetime.now(UTC),
                    )
                    .returning(grants.c.id)
                )
            ).scalar_one()
        else:
            grant_id = existing.id
    return GrantInfo(grant_id, subject, action, bk_obj_id, bk_inst_id)


async def _require_user(conn: AsyncConnection, username: str) -> None:
    found = await conn.execute(select(users.c.id).where(users.c.bk_username == username))
    if found.first() is None:
        raise AccountError(
            f"no user {username}: create it with `cmdbgraph users create {username}`"
        )


async def _require_model(conn: AsyncConnection, bk_obj_id: str) -> None:
    found = await conn.execute(select(models.c.id).where(models.c.bk_obj_id == bk_obj_id))
    if found.first() is None:
        known = (await conn.execute(select(models.c.bk_obj_id).order_by(models.c.id))).scalars()
        raise AccountError(f"no model {bk_obj_id} (the models: {', '.join(known)})")


async def _require_instance(conn: AsyncConnection, bk_obj_id: str, bk_inst_id: int) -> None:
    found = await conn.execute(
        select(instances.c.bk_obj_id).where(instances.c.bk_inst_id == bk_inst_id)
    )
    row = found.first()
    if row is None or (bk_obj_id != ALL_MODELS and row.bk_obj_id != bk_obj_id):
        raise AccountError(f"no instance {bk_inst_id} of model {bk_obj_id}")


async def list_grants(db: Database, subject: str | None = None) -> list[GrantInfo]:
    query = select(
        grants.c.id, grants.c.subject, grants.c.action, grants.c.bk_obj_id, grants.c.bk_inst_id
    ).order_by(grants.c.id)
    if subject is not None:
        query = query.where(grants.c.subject == subject)
    async with db.read() as conn:
        return [GrantInfo(*row) for row in await conn.execute(query)]


async def remove_grant(db: Database, grant_id: int) -> bool:
    async with db.write() as conn:
        result = await conn.execute(delete(grants).where(grants.c.id == grant_id))
        return result.rowcount > 0


async def has_demo_credentials(db: Database) -> bool:
    """True when the well-known demo app or token would let anyone in."""
    async with db.read() as conn:
        app = (
            await conn.execute(
                select(apps.c.secret_hash).where(apps.c.app_code == "esb_test", apps.c.active)
            )
        ).first()
        if app is not None and verify_secret("xxx", app.secret_hash):
            return True
        token = (
            await conn.execute(
                select(tokens.c.id).where(
                    tokens.c.token_hash == token_digest("xxx"), tokens.c.revoked.is_(False)
                )
            )
        ).first()
        return token is not None
