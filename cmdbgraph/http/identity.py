"""Who calls, from where, in which language and under which request id, read from an HTTP
request. GraphQL and the REST shim take the caller from here: both accept the same headers.

Trust is decided from the socket's peer address and the configured ``trusted_proxies`` only.
Proxy headers (``X-Forwarded-For``) and the native ``X-Bkcmdb-*`` identity headers count only
when the peer itself is a trusted proxy; from anyone else they are ignored. ``cmdbgraph serve``
runs uvicorn with its own proxy-header handling off, so the peer address the app sees is the
socket's.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace

import orjson
from starlette.requests import HTTPConnection, Request

from cmdbgraph.services import auth
from cmdbgraph.services.auth import Claims
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.demo import DEMO_APP_CODE
from cmdbgraph.services.errors import ZH, CmdbError, ErrorCode, normalize_language
from cmdbgraph.settings import parse_networks

_LANGUAGE_HEADERS = (
    "blueking-language",
    "x-bkcmdb-language",
    "http_blueking_language",
    "accept-language",
)


class TrustedProxies:
    """The peers whose proxy and identity headers are believed."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = parse_networks(entries)

    def __contains__(self, host: str | None) -> bool:
        if not host or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


def peer_address(scope: Mapping) -> str | None:
    """The socket's peer address (None on a Unix socket)."""
    client = scope.get("client")
    return client[0] if client else None


def client_address(scope: Mapping, headers: Mapping[str, str], trusted: TrustedProxies) -> str:
    """The address of the client, for logs: the peer, or, when the peer is a trusted proxy,
    the nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy."""
    peer = peer_address(scope) or ""
    if peer not in trusted:
        return peer
    hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop[:64]
    return peer


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


# What a caller may say about itself in the body, as BlueKing's ESB reads it; the ESB removes
# them before the call reads its arguments, and so does the shim.
BODY_CREDENTIALS = (
    "bk_app_code",
    "bk_app_secret",
    "bk_username",
    "bk_token",
    "bk_supplier_account",
)


def claims(headers: Mapping[str, str], body: Mapping | None = None, *, trusted: bool) -> Claims:
    """What the request claims: the ESB body fields win over the ``X-Bkapi-Authorization``
    header; native ``X-Bkcmdb-*`` identity headers count only when ``trusted`` (the peer is
    a trusted proxy)."""
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
        for name in BODY_CREDENTIALS:
            if name in body and body[name] not in (None, ""):
                fields[name] = body[name]
    supplier = (
        _text(fields.get("bk_supplier_account"))
        or headers.get("x-bkcmdb-supplier-account", "")
        or headers.get("http_blueking_supplier_id", "")
        or "0"
    )
    claimed = Claims(
        app_code=_text(fields.get("bk_app_code")),
        app_secret=_text(fields.get("bk_app_secret")),
        username=_text(fields.get("bk_username")),
        token=_text(fields.get("bk_token")) or _text(fields.get("access_token")),
        supplier_account=supplier,
    )
    if not trusted:
        return claimed
    return replace(
        claimed,
        native_username=headers.get("x-bkcmdb-user", "") or headers.get("bk_user", ""),
        native_app_code=headers.get("x-bkcmdb-app-code", ""),
        trusted=True,
    )


# An app code shown back in a hint: one that reads safely in a shell command and a header.
_SHOWN_APP_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def app_hint(app_code: str) -> str:
    """What to do when the app ``app_code`` could not be authenticated. The same words whether
    the app is unknown, revoked or was given a wrong secret: a caller must not tell them apart.
    """
    if not _SHOWN_APP_CODE.fullmatch(app_code):
        return (
            "the app could not be authenticated: check its code and secret; to create an app: "
            "`cmdbgraph apps create <app code>`"
        )
    hint = (
        f"app {app_code} could not be authenticated: check its code and secret; to create it: "
        f"`cmdbgraph apps create {app_code}`"
    )
    if app_code == DEMO_APP_CODE:
        hint += " (or `cmdbgraph seed --demo` for the demo data)"
    return hint


async def identify(request: Request, body: Mapping | None = None) -> Caller:
    """The proven caller of ``request``; raises ``CmdbError`` (1100004 / 1199027) otherwise,
    with a hint when an app code was given but could not be authenticated."""
    headers = request.headers
    from_gateway = getattr(request.state, "gateway_caller", None)
    if from_gateway is not None:
        # The gateway verified the app and the user, and signed what it verified.
        claimed = Claims(
            supplier_account=headers.get("x-bkcmdb-supplier-account", "") or "0",
            native_username=from_gateway.username,
            native_app_code=from_gateway.app_code,
            trusted=True,
        )
    else:
        trusted = peer_address(request.scope) in request.app.state.trusted_proxies
        claimed = claims(headers, body, trusted=trusted)
    return await _prove(request, claimed, headers)


# Headers only a trusted proxy may set (see ``claims``).
_NATIVE_IDENTITY = frozenset({"x-bkcmdb-user", "x-bkcmdb-app-code", "bk_user"})


def connection_headers(connection: HTTPConnection, params: Mapping) -> dict[str, str]:
    """The headers a websocket's caller sends: its handshake's, then those of its
    ``connection_init`` payload (names in any case; an object or array value as its JSON
    text), except the identity headers only a trusted proxy may set: a payload passes through
    a proxy untouched, so it never speaks for the proxy."""
    headers = dict(connection.headers)
    for name, value in params.items():
        if not isinstance(name, str) or name.lower() in _NATIVE_IDENTITY:
            continue
        if isinstance(value, dict | list):
            headers[name.lower()] = orjson.dumps(value).decode()
        elif isinstance(value, str):
            headers[name.lower()] = value
    return headers


async def identify_connection(connection: HTTPConnection, params: Mapping) -> Caller:
    """The proven caller of a websocket connection, from its ``connection_init`` payload
    ``params`` (headers, or the ESB body's credential fields) and its handshake's headers (see
    ``connection_headers``); raises as ``identify`` does."""
    headers = connection_headers(connection, params)
    trusted = peer_address(connection.scope) in connection.app.state.trusted_proxies
    return await _prove(connection, claims(headers, params, trusted=trusted), headers)


async def _prove(connection: HTTPConnection, claimed: Claims, headers: Mapping[str, str]) -> Caller:
    try:
        return await auth.authenticate(
            connection.app.state.db,
            claimed,
            language=language(headers),
            request_id=request_id(headers, connection.state),
            enforce=connection.app.state.settings.auth,
        )
    except CmdbError as error:
        if error.code is ErrorCode.CALL_SOURCE_AUTHENTICATION_FAILED and claimed.app_code:
            error.hint = app_hint(claimed.app_code)
        raise
