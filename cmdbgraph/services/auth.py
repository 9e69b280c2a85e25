"""Authentication (apps, users, tokens) and permission (grants), with upstream's contract.

- An **app** proves itself with its code and secret; the secret is stored as a scrypt hash and
  compared in constant time. A successful check is remembered in memory for a short while
  (keyed by the stored hash, so a new secret or a revocation takes effect at once).
- A **user** is named by ``bk_username`` (asserted by an authenticated app, as BlueKing's ESB
  lets trusted apps do) or proven by a ``bk_token`` that this service issued. A given token
  must be valid: an expired or revoked one is refused, never ignored.
- A trusted proxy (by client address) may instead name the user and app in the native
  ``X-Bkcmdb-*`` headers.
- A **grant** gives a user, or everyone (``*``), the action ``edit`` on one instance, on every
  instance of a model, or on every model (``*``). Writes are authorized before anything is
  written, for every instance of the request, with one statement.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from cmdbgraph.db.engine import Database
from cmdbgraph.db.tables import apps, grants, instances, models, tokens, users
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import EN, CmdbError, ErrorCode, parameter_invalid

log = logging.getLogger(__name__)

EDIT = "edit"
EVERYONE = "*"
ALL_MODELS = "*"
ACTIONS = (EDIT,)

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_VERIFIED_TTL_SECONDS = 60.0
_verified: dict[tuple[str, str, str], float] = {}


# ---------------------------------------------------------------------------------------------
# Secrets


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    encoded_salt = base64.b64encode(salt).decode()
    encoded_digest = base64.b64encode(digest).decode()
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${encoded_salt}${encoded_digest}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(
        secret.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected),
    )
    return hmac.compare_digest(actual, expected)


def _verify_cached(app_code: str, secret: str, stored: str) -> bool:
    # The key holds a digest of the secret, not the secret: nothing reversible stays in memory.
    key = (app_code, stored, hashlib.sha256(secret.encode()).hexdigest())
    now = time.monotonic()
    if _verified.get(key, 0.0) > now:
        return True
    if not verify_secret(secret, stored):
        return False
    if len(_verified) > 10_000:
        _verified.clear()
    _verified[key] = now + _VERIFIED_TTL_SECONDS
    return True


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Authentication


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
            await _require_user(conn, username)
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
        app = (
            await conn.execute(
                select(apps.c.secret_hash, apps.c.active).where(apps.c.app_code == claims.app_code)
            )
        ).first()
        if (
            app is None
            or not app.active
            or not _verify_cached(claims.app_code, claims.app_secret, app.secret_hash)
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
            await _require_user(conn, username)
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


async def _require_user(conn: AsyncConnection, username: str) -> None:
    found = (await conn.execute(select(users.c.id).where(users.c.bk_username == username))).first()
    if found is None:
        raise _user_failure()


def require_user(caller: Caller) -> None:
    """Writes need a user: upstream answers 1199027 without one."""
    if not caller.username:
        raise _user_failure()


# ---------------------------------------------------------------------------------------------
# Permission


async def authorize_instances(
    conn: AsyncConnection,
    caller: Caller,
    wanted: dict[str, set[int]],
) -> None:
    """Refuse (9900403, with upstream's permission object) unless ``caller`` may edit every
    instance in ``wanted`` (model id -> instance ids). One statement when everything is
    covered; two more to name the missing resources otherwise."""
    if not caller.enforce_permissions:
        return
    require_user(caller)
    wanted = {obj: ids for obj, ids in wanted.items() if ids}
    if not wanted:
        return
    rows = await conn.execute(
        select(grants.c.bk_obj_id, grants.c.bk_inst_id).where(
            grants.c.subject.in_([caller.username, EVERYONE]),
            grants.c.action == EDIT,
            grants.c.bk_obj_id.in_([*wanted, ALL_MODELS]),
        )
    )
    whole_models: set[str] = set()
    granted: set[tuple[str, int]] = set()
    for obj, inst in rows:
        if inst == 0:
            whole_models.add(obj)
        else:
            granted.add((obj, inst))
    if ALL_MODELS in whole_models:
        return
    missing = {
        obj: sorted(i for i in ids if (obj, i) not in granted)
        for obj, ids in wanted.items()
        if obj not in whole_models
    }
    missing = {obj: ids for obj, ids in missing.items() if ids}
    if missing:
        raise CmdbError(
            ErrorCode.PERMISSION_DENIED,
            permission=await _permission_object(conn, missing, caller.language),
        )


async def authorize_models(
    conn: AsyncConnection, caller: Caller, bk_obj_ids: Iterable[str]
) -> None:
    """Refuse unless ``caller`` may edit every instance of each model (``*`` for the catalog)."""
    if not caller.enforce_permissions:
        return
    require_user(caller)
    wanted = set(bk_obj_ids)
    rows = await conn.execute(
        select(grants.c.bk_obj_id).where(
            grants.c.subject.in_([caller.username, EVERYONE]),
            grants.c.action == EDIT,
            grants.c.bk_inst_id == 0,
            grants.c.bk_obj_id.in_([*wanted, ALL_MODELS]),
        )
    )
    held = set(rows.scalars())
    if ALL_MODELS in held:
        return
    lacking = wanted - held
    if lacking:
        raise CmdbError(
            ErrorCode.PERMISSION_DENIED,
            permission=await _permission_object(
                conn, {obj: [] for obj in sorted(lacking)}, caller.language
            ),
        )


async def _permission_object(
    conn: AsyncConnection, missing: dict[str, list[int]], language: str
) -> dict:
    """Upstream's ``permission``: what to apply for, one action per model, one path per
    instance (none for a model-wide or catalog permission)."""
    model_rows = await conn.execute(
        select(models.c.id, models.c.bk_obj_id, models.c.bk_obj_name).where(
            models.c.bk_obj_id.in_(list(missing))
        )
    )
    known = {row.bk_obj_id: row for row in model_rows}
    inst_ids = [i for ids in missing.values() for i in ids]
    names: dict[int, str] = {}
    if inst_ids:
        rows = await conn.execute(
            select(instances.c.bk_inst_id, instances.c.bk_inst_name).where(
                instances.c.bk_inst_id.in_(inst_ids)
            )
        )
        names = {inst_id: name for inst_id, name in rows}
    system_name = "CMDB" if language == EN else "配置平台"
    actions = []
    for obj, ids in missing.items():
        model = known.get(obj)
        resource_type = f"comobj_{model.id}" if model else f"comobj_{obj}"
        type_name = model.bk_obj_name if model else obj
        action_name = f"{type_name} instance edit" if language == EN else f"{type_name}实例编辑"
        actions.append(
            {
                "id": f"edit_{resource_type}",
                "name": action_name,
                "related_resource_types": [
                    {
                        "system_id": "bk_cmdb",
                        "system_name": system_name,
                        "type": resource_type,
                        "type_name": type_name,
                        "instances": [
                            [
                                {
                                    "type": resource_type,
                                    "type_name": type_name,
                                    "id": str(inst_id),
                                    "name": names.get(inst_id, ""),
                                }
                            ]
                            for inst_id in ids
                        ],
                    }
                ],
            }
        )
    return {"system_id": "bk_cmdb", "system_name": system_name, "actions": actions}


# ---------------------------------------------------------------------------------------------
# Management (CLI and demo)


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


async def create_app(db: Database, app_code: str, secret: str | None = None) -> str:
    """Create an app; returns its secret (generated unless given). Shown once, stored hashed."""
    if not app_code or len(app_code) > 64:
        raise parameter_invalid("bk_app_code")
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
        raise CmdbError(ErrorCode.DUPLICATED, ("bk_app_code",)) from None
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
    if not username or len(username) > 64:
        raise parameter_invalid("bk_username")
    try:
        async with db.write() as conn:
            await conn.execute(
                insert(users).values(bk_username=username, create_time=datetime.now(UTC))
            )
    except IntegrityError:
        raise CmdbError(ErrorCode.DUPLICATED, ("bk_username",)) from None


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
        raise parameter_invalid("action")
    if not subject:
        raise parameter_invalid("subject")
    if not bk_obj_id:
        raise parameter_invalid("bk_obj_id")
    async with db.write() as conn:
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


def instances_of_request(src_obj: str, dest_obj: str, details: Sequence) -> dict[str, set[int]]:
    """Model id -> instance ids a batch touches: every source and every target."""
    wanted: dict[str, set[int]] = {src_obj: set(), dest_obj: set()}
    for src, dest in details:
        wanted[src_obj].add(src)
        wanted[dest_obj].add(dest)
    return wanted
