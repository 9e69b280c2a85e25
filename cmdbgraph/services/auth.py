"""Authentication, with upstream's contract.

- An **app** proves itself with its code and secret (see ``secrets``).
- A **user** is named by ``bk_username`` (asserted by an authenticated app, as BlueKing's ESB
  lets trusted apps do) or proven by a ``bk_token`` that this service issued. A given token
  must be valid: an expired or revoked one is refused, never ignored.
- A trusted proxy (by peer address) may instead name the user and app in the native
  ``X-Bkcmdb-*`` headers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import apps, tokens, users
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import CmdbError, ErrorCode
from cmdbgraph.services.hashes import token_digest, verify_cached

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a request claims about its caller, gathered by the HTTP layer."""

    app_code: str = ""
    app_secret: str = ""
    username: str = ""
    token: str = ""
    supplier_account: str = "0"
    # From native X-Bkcmdb-* headers; honoured only when ``trusted`` is set.
    native_username: str = ""
    native_app_code: str = ""
    trusted: bool = False


def _app_failure() -> CmdbError:
    return CmdbError(ErrorCode.CALL_SOURCE_AUTHENTICATION_FAILED)


def _user_failure() -> CmdbError:
    return CmdbError(ErrorCode.AUTHORIZATION_QUERY_FAILED, ("user",))


# Built once, not per request.
_APP = select(apps.c.secret_hash, apps.c.active).where(apps.c.app_code == bindparam("app_code"))
_USER = select(users.c.id).where(users.c.bk_username == bindparam("bk_username"))


async def authenticate(
    db: Database,
    claims: Claims,
    *,
    language: str,
    request_id: str,
    enforce: bool = True,
) -> Caller:
    """The caller proven by ``claims``; raises 1100004 (app) or 1199027 (user) otherwise.

    With ``enforce`` off, the claims are taken at their word (local experiments only).
    """
    if not enforce:
        return Caller(
            username=claims.username or claims.native_username,
            app_code=claims.app_code or claims.native_app_code,
            supplier_account=claims.supplier_account,
            language=language,
            request_id=request_id,
            enforce_permissions=False,
        )
    if claims.trusted and claims.native_username and not claims.app_secret:
        # A trusted proxy has authenticated the caller already.
        username = claims.native_username
        async with db.read() as conn:
            await require_known_user(conn, username)
        return Caller(
            username=username,
            app_code=claims.native_app_code or claims.app_code,
            supplier_account=claims.supplier_account,
            language=language,
            request_id=request_id,
        )
    if not claims.app_code or not claims.app_secret:
        raise _app_failure()
    async with db.read() as conn:
        app = (await conn.execute(_APP, {"app_code": claims.app_code})).first()
        if (
            app is None
            or not app.active
            or not verify_cached(claims.app_code, claims.app_secret, app.secret_hash)
        ):
            log.warning(
                "app authentication failed for %r (request %s)", claims.app_code, request_id
            )
            raise _app_failure()
        username = ""
        if claims.token:
            username = await _token_user(conn, claims.token)
            if claims.username and claims.username != username:
                raise _user_failure()
        elif claims.username:
            username = claims.username
            await require_known_user(conn, username)
    return Caller(
        username=username,
        app_code=claims.app_code,
        supplier_account=claims.supplier_account,
        language=language,
        request_id=request_id,
    )


async def _token_user(conn: AsyncConnection, token: str) -> str:
    row = (
        await conn.execute(
            select(tokens.c.bk_username, tokens.c.expires_at, tokens.c.revoked).where(
                tokens.c.token_hash == token_digest(token)
            )
        )
    ).first()
    if row is None or row.revoked:
        raise _user_failure()
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        raise _user_failure()
    return row.bk_username


async def require_known_user(conn: AsyncConnection, username: str) -> None:
    """Refuse (1199027) a user name this service does not know."""
    found = (await conn.execute(_USER, {"bk_username": username})).first()
    if found is None:
        raise _user_failure()


def require_user(caller: Caller) -> None:
    """Writes need a user: upstream answers 1199027 without one."""
    if not caller.username:
        raise _user_failure()
