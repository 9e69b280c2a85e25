"""Reading who calls, in which language and under which request id, from an HTTP request.

Shared by the REST shim and GraphQL: both accept the same headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import orjson
from starlette.requests import Request

from cmdbgraph.services import auth
from cmdbgraph.services.auth import Claims
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import ZH, normalize_language

_LANGUAGE_HEADERS = (
    "blueking-language",
    "x-bkcmdb-language",
    "http_blueking_language",
    "accept-language",
)


def request_id(headers: Mapping[str, str], state: object = None) -> str:
    """The id the request middleware assigned, else the caller's X-Request-ID, else a new one."""
    assigned = getattr(state, "request_id", None) if state is not None else None
    if assigned:
        return assigned
    given = headers.get("x-request-id", "").strip()
    if given and len(given) <= 64 and given.isprintable():
        return given
    return uuid.uuid4().hex


def language(headers: Mapping[str, str]) -> str:
    for name in _LANGUAGE_HEADERS:
        found = normalize_language(headers.get(name))
        if found is not None:
            return found
    return ZH


def _text(value: object) -> str:
    # A NUL character can name no app or user: treated as no value at all.
    return value if isinstance(value, str) and "\x00" not in value else ""


def claims(
    headers: Mapping[str, str],
    body: Mapping | None = None,
    *,
    client_host: str | None = None,
    trusted_proxies: Sequence[str] = (),
) -> Claims:
    """What the request claims: the ESB body fields win over the ``X-Bkapi-Authorization``
    header; native ``X-Bkcmdb-*`` identity headers count only from a trusted proxy."""
    fields: dict[str, object] = {}
    raw = headers.get("x-bkapi-authorization")
    if raw:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            fields.update(parsed)
    if body:
        for name in (
            "bk_app_code",
            "bk_app_secret",
            "bk_username",
            "bk_token",
            "bk_supplier_account",
        ):
            if name in body and body[name] not in (None, ""):
                fields[name] = body[name]
    supplier = (
        _text(fields.get("bk_supplier_account"))
        or headers.get("x-bkcmdb-supplier-account", "")
        or headers.get("http_blueking_supplier_id", "")
        or "0"
    )
    return Claims(
        app_code=_text(fields.get("bk_app_code")),
        app_secret=_text(fields.get("bk_app_secret")),
        username=_text(fields.get("bk_username")),
        token=_text(fields.get("bk_token")) or _text(fields.get("access_token")),
        supplier_account=supplier,
        native_username=headers.get("x-bkcmdb-user", "") or headers.get("bk_user", ""),
        native_app_code=headers.get("x-bkcmdb-app-code", ""),
        trusted=client_host is not None and client_host in trusted_proxies,
    )


async def identify(request: Request, body: Mapping | None = None) -> Caller:
    """The proven caller of ``request``; raises ``CmdbError`` (1100004 / 1199027) otherwise."""
    settings = request.app.state.settings
    headers = request.headers
    return await auth.authenticate(
        request.app.state.db,
        claims(
            headers,
            body,
            client_host=request.client.host if request.client else None,
            trusted_proxies=settings.trusted_proxies,
        ),
        language=language(headers),
        request_id=request_id(headers, request.state),
        enforce=settings.auth,
    )
