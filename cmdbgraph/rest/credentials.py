"""Reading who calls, in which language and under which request id, from an HTTP request.

Shared by the REST shim and GraphQL: both accept the same headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from cmdbgraph.services.errors import ZH, normalize_language

_LANGUAGE_HEADERS = (
    "blueking-language",
    "x-bkcmdb-language",
    "http_blueking_language",
    "accept-language",
)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the request claims; ``services.auth`` decides what it proves."""

    app_code: str = ""
    app_secret: str = ""
    username: str = ""
    token: str = ""
    supplier_account: str = "0"
    # Identity from native X-Bkcmdb-* headers, only honoured from trusted proxies.
    native_username: str = ""
    native_app_code: str = ""


def request_id(headers: Mapping[str, str]) -> str:
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
    return value if isinstance(value, str) else ""


def credentials(headers: Mapping[str, str], body: Mapping | None = None) -> Credentials:
    """Credentials from the ESB body fields, else the ``X-Bkapi-Authorization`` header."""
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
        for name in ("bk_app_code", "bk_app_secret", "bk_username", "bk_token",
                     "bk_supplier_account"):
            if name in body and body[name] not in (None, ""):
                fields[name] = body[name]
    supplier = (
        _text(fields.get("bk_supplier_account"))
        or headers.get("x-bkcmdb-supplier-account", "")
        or headers.get("http_blueking_supplier_id", "")
        or "0"
    )
    return Credentials(
        app_code=_text(fields.get("bk_app_code")),
        app_secret=_text(fields.get("bk_app_secret")),
        username=_text(fields.get("bk_username")),
        token=_text(fields.get("bk_token")) or _text(fields.get("access_token")),
        supplier_account=supplier,
        native_username=headers.get("x-bkcmdb-user", "") or headers.get("bk_user", ""),
        native_app_code=headers.get("x-bkcmdb-app-code", ""),
    )
