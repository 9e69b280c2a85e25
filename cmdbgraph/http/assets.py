"""The vendored browser assets (GraphiQL, Swagger UI): served under content-hashed names with a
long cache, and compressed.

Every script and stylesheet is committed with its precompressed copies, ``NAME.br`` (brotli)
and ``NAME.gz`` (gzip), written by the ``scripts/vendor-*.sh`` scripts; nothing is compressed
while serving. A request gets the smallest copy its ``Accept-Encoding`` takes, with
``Content-Encoding`` and ``Vary: Accept-Encoding``.

A script or stylesheet is named by its content, ``graphiql.min.<8 hex digits of its
sha256>.js``: the pages link those names, answered with ``Cache-Control: public,
max-age=31536000, immutable``, so a browser fetches each file once per version and never
revalidates it. The plain names (and the licence files) still answer, with ``no-cache``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response

IMMUTABLE = "public, max-age=31536000, immutable"


def inline_source(text: str) -> str:
    """The Content-Security-Policy source that allows this inline script or style."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def page_policy(*directives: str) -> str:
    """The Content-Security-Policy of a page of this service: nothing by default, the page's
    own ``directives`` (its scripts, styles, fonts), then what every page shares: images from
    itself and data: URIs, connections to itself only (CSP 3 matches its ws: and wss: to it
    too: the subscriptions' websocket), no base URI, no form target, framed by itself only."""
    return "; ".join(
        [
            "default-src 'none'",
            *directives,
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
        ]
    )


REVALIDATE = "no-cache"

# Suffix of a precompressed copy -> its Content-Encoding, best first.
COMPRESSED = {".br": "br", ".gz": "gzip"}
# The files named by their content (the others keep their plain name only).
HASHED_SUFFIXES = frozenset({".js", ".css"})
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}


@dataclass(frozen=True)
class Variant:
    """One copy of an asset on disk: the file itself, or a precompressed copy of it."""

    path: Path
    stat: os.stat_result
    encoding: str  # "identity", "br" or "gzip"
    etag: str


@dataclass(frozen=True)
class Asset:
    name: str  # graphiql.min.js
    hashed_name: str | None  # graphiql.min.0123abcd.js; None for a file kept by its plain name
    media_type: str
    variants: dict[str, Variant] = field(default_factory=dict)  # by encoding


def hashed_name(name: str, content: bytes) -> str:
    """``name`` with the first 8 hex digits of the sha256 of ``content`` before its suffix."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{hashlib.sha256(content).hexdigest()[:8]}{dot}{suffix}"


def accepted_encodings(header: str) -> dict[str, float]:
    """The codings an ``Accept-Encoding`` value names, with their weights (``*`` included)."""
    weights: dict[str, float] = {}
    for item in header.split(","):
        coding, *parameters = (part.strip() for part in item.split(";"))
        if not coding:
            continue
        weight = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[coding.lower()] = weight
    return weights


def choose_encoding(header: str, available: set[str]) -> str:
    """The best of the ``available`` compressed codings that ``header`` accepts, else
    ``identity``. Brotli wins a tie: it is the smaller."""
    weights = accepted_encodings(header)
    best, best_weight = "identity", 0.0
    for coding in COMPRESSED.values():
        if coding not in available:
            continue
        weight = weights.get(coding, weights.get("*", 0.0))
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


def _variant(path: Path, encoding: str, digest: str) -> Variant:
    return Variant(path, path.stat(), encoding, f'"{digest[:16]}-{encoding}"')


def _scan(directory: Path) -> dict[str, Asset]:
    """Every file of ``directory``, by the names it answers to."""
    assets: dict[str, Asset] = {}
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix in COMPRESSED:
            continue
        content = path.read_bytes()
        digest = hashlib.sha256(content).hexdigest()
        variants = {"identity": _variant(path, "identity", digest)}
        for suffix, encoding in COMPRESSED.items():
            compressed = path.with_name(path.name + suffix)
            if compressed.is_file():
                variants[encoding] = _variant(compressed, encoding, digest)
        hashed = hashed_name(path.name, content) if path.suffix in HASHED_SUFFIXES else None
        asset = Asset(
            name=path.name,
            hashed_name=hashed,
            media_type=_MEDIA_TYPES.get(path.suffix, "text/plain"),
            variants=variants,
        )
        assets[path.name] = asset
        if hashed is not None:
            assets[hashed] = asset
    return assets


def _mounted_path(scope) -> str:
    """The request's path below the mount point (Starlette's Mount adds the point, and any
    proxy prefix, to ``root_path`` and leaves ``path`` whole)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path


class StaticAssets:
    """An ASGI app serving the files of ``directory`` (mounted under a path prefix), read
    on first use: importing the app costs nothing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._assets: dict[str, Asset] | None = None

    @property
    def assets(self) -> dict[str, Asset]:
        if self._assets is None:
            self._assets = _scan(self.directory)
        return self._assets

    def url_name(self, name: str) -> str:
        """The name a page links ``name`` by: its content-hashed name."""
        hashed = self.assets[name].hashed_name
        if hashed is None:
            raise KeyError(f"{name} is not served under a hashed name")
        return hashed

    def tags(
        self, base: str, scripts: tuple[str, ...], stylesheets: tuple[str, ...]
    ) -> tuple[str, str]:
        """The ``<link>`` tags of ``stylesheets`` and the ``<script>`` tags of ``scripts``, by
        their hashed names under ``base`` (a path relative to the page), one a line."""
        styles = "\n".join(
            f'    <link rel="stylesheet" href="{base}/{self.url_name(name)}" />'
            for name in stylesheets
        )
        loaded = "\n".join(
            f'    <script src="{base}/{self.url_name(name)}"></script>' for name in scripts
        )
        return styles, loaded

    async def __call__(self, scope, receive, send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(405, headers={"Allow": "GET, HEAD"})
        name = _mounted_path(scope).removeprefix("/")
        asset = self.assets.get(name)
        if asset is None:
            raise HTTPException(404)
        response = self.response(asset, immutable=name == asset.hashed_name, scope=scope)
        await response(scope, receive, send)

    @staticmethod
    def response(asset: Asset, *, immutable: bool, scope) -> Response:
        request_headers = Headers(scope=scope)
        encoding = choose_encoding(
            request_headers.get("accept-encoding", ""), set(asset.variants) - {"identity"}
        )
        variant = asset.variants[encoding]
        headers = {
            "Cache-Control": IMMUTABLE if immutable else REVALIDATE,
            "ETag": variant.etag,
        }
        if len(asset.variants) > 1:
            headers["Vary"] = "Accept-Encoding"
        if encoding != "identity":
            headers["Content-Encoding"] = encoding
        if_none_match = request_headers.get("if-none-match")
        if if_none_match is not None and (
            if_none_match.strip() == "*"
            or variant.etag in (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
        ):
            return Response(status_code=304, headers=headers)
        return FileResponse(
            variant.path, headers=headers, media_type=asset.media_type, stat_result=variant.stat
        )
