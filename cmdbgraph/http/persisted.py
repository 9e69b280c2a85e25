"""Persisted queries on the GraphQL endpoint (``CMDBGRAPH_PERSISTED_QUERIES``), in the protocol
Apollo Client's ``createPersistedQueryLink`` and urql's persisted exchange speak: a request's
``extensions.persistedQuery`` is ``{"version": 1, "sha256Hash": "<hex>"}``, the SHA-256 of the
document's UTF-8 text.

- ``off``: a request carrying only a hash is answered ``PersistedQueryNotSupported`` (400): the
  clients then send full documents; a hash beside a full document is ignored.
- ``auto`` (the default): a hash the server knows runs its document (by POST, or by GET with
  ``?extensions=...``: queries only); an unknown one answers ``PersistedQueryNotFound`` (HTTP
  200, ``PERSISTED_QUERY_NOT_FOUND``: what the clients branch on), and the client sends the
  document with its hash; once it parses and validates, it is stored for every process.
- ``allowlist``: only documents registered by an operator run, by hash or by their full text;
  anything else is refused with ``PERSISTED_QUERY_NOT_ALLOWED`` (403), and clients store
  nothing. While introspection is on, a document that only introspects runs too (GraphiQL
  loads the schema with one); a locked-down deployment turns introspection off as well.

A hash that does not match the document beside it is refused with
``PERSISTED_QUERY_HASH_MISMATCH`` (400), another version or a hash that is no SHA-256 with
``BAD_REQUEST`` (400), in Apollo Server's words.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from graphql import GraphQLError
from strawberry.http import GraphQLRequestData
from strawberry.types import ExecutionResult

from cmdbgraph.db.engine import Database
from cmdbgraph.services.persisted_queries import VERSION, PersistedQueries, document_hash, is_hash
from cmdbgraph.settings import Settings

log = logging.getLogger("cmdbgraph")

NOT_FOUND = "PersistedQueryNotFound"
NOT_SUPPORTED = "PersistedQueryNotSupported"
NOT_ALLOWED_MESSAGE = (
    "This server runs only registered documents, and this one is not registered: an operator "
    "registers it with `cmdbgraph queries register FILE`."
)

# The codes of errors that mean the document itself is wrong: it is not stored.
_DOCUMENT_ERRORS = frozenset({"GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED"})


class Refused(Exception):
    """A request refused by the persisted-query rules: its HTTP status, message and code."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def not_allowed() -> Refused:
    return Refused(403, NOT_ALLOWED_MESSAGE, "PERSISTED_QUERY_NOT_ALLOWED")


def _requested_hash(persisted: object) -> str:
    """The hash a ``persistedQuery`` extension asks for (lowercase), or the refusal."""
    version = persisted.get("version") if isinstance(persisted, dict) else None
    if type(version) is not int or version != VERSION:  # neither true nor 1.0
        raise Refused(400, "Unsupported persisted query version", "BAD_REQUEST")
    assert isinstance(persisted, dict)
    sha256_hash = persisted.get("sha256Hash")
    if not isinstance(sha256_hash, str) or not is_hash(sha256_hash):
        raise Refused(
            400,
            "persistedQuery.sha256Hash must be the SHA-256 of the query, in hex",
            "BAD_REQUEST",
        )
    return sha256_hash.lower()


class PersistedQueryGate:
    """The persisted-query rules of one server process, over the shared store.
    ``introspects(query)``: the document only introspects, and may run unregistered."""

    def __init__(
        self, settings: Settings, db: Database, introspects: Callable[[str], bool]
    ) -> None:
        self.mode = settings.persisted_queries
        self.store = PersistedQueries(db, max_automatic=settings.max_persisted_queries)
        self.introspects = introspects

    async def prepare(self, data: GraphQLRequestData) -> str | None:
        """Apply the rules to a request: ``data.query`` becomes the stored document when the
        request sent only its hash. Returns the hash under which to store the request's
        document once it validated (``auto``, a document sent with its hash), else None.
        Raises ``Refused``."""
        extensions = data.extensions if isinstance(data.extensions, dict) else {}
        persisted = extensions.get("persistedQuery")
        if self.mode == "off":
            if persisted is not None and not data.query:
                raise Refused(400, NOT_SUPPORTED, "PERSISTED_QUERY_NOT_SUPPORTED")
            return None
        if persisted is None:
            if self.mode == "allowlist" and data.query:
                await self.require_registered(data.query)
            return None
        sha256_hash = _requested_hash(persisted)
        if not data.query:
            document = await self.store.find(sha256_hash, registered_only=self.mode == "allowlist")
            if document is None:
                raise Refused(200, NOT_FOUND, "PERSISTED_QUERY_NOT_FOUND")
            data.query = document
            return None
        if document_hash(data.query) != sha256_hash:
            raise Refused(400, "provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
        if self.mode == "allowlist":
            await self.require_registered(data.query, sha256_hash)
            return None
        return sha256_hash

    async def require_registered(self, query: str, sha256_hash: str | None = None) -> None:
        """Refuse ``query`` unless it is registered (or only introspects)."""
        if self.introspects(query):
            return
        found = await self.store.find(sha256_hash or document_hash(query), registered_only=True)
        if found is None:
            raise not_allowed()

    async def store_validated(self, sha256_hash: str, query: str, result: ExecutionResult) -> None:
        """Store ``query`` under its hash unless the result shows it does not parse or
        validate. A failure to store is logged, never the request's: the client sends the
        document again next time."""
        if any(_document_error(error) for error in result.errors or ()):
            return
        try:
            await self.store.store(sha256_hash, query)
        except Exception:  # noqa: BLE001 - the query ran; storing it is a bonus
            log.warning("storing a persisted query failed", exc_info=True)


def _document_error(error: GraphQLError) -> bool:
    if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
        return False
    code = (error.extensions or {}).get("code")
    if code is None:
        code = (
            "GRAPHQL_PARSE_FAILED"
            if error.message.startswith("Syntax Error")
            else "GRAPHQL_VALIDATION_FAILED"
            if error.path is None
            else None
        )
    return code in _DOCUMENT_ERRORS
