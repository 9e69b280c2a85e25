"""Configuration: environment variables prefixed ``CMDBGRAPH_`` (the CLI options mirror them)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

import orjson
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///cmdbgraph.sqlite3"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_DRIVERS = {
    # The common spellings of the two databases, with the drivers this service runs on.
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


def normalize_database_url(url: str) -> str:
    """``url`` with the service's driver (``postgres://`` and ``postgresql://`` become
    ``postgresql+asyncpg://``, ``sqlite:///`` becomes ``sqlite+aiosqlite:///``); raises
    ``ValueError`` for anything else."""
    url = url.strip()
    scheme, separator, rest = url.partition("://")
    driver = _DRIVERS.get(scheme.lower()) if separator else None
    if driver is None:
        raise ValueError(
            f"{url!r} is not a database URL this service can use: give "
            "sqlite+aiosqlite:///path/to/file.sqlite3 or "
            "postgresql+asyncpg://user:password@host:5432/database"
        )
    return f"{driver}://{rest}"


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or networks (``10.0.0.7``, ``10.0.0.0/8``, ``::1``); raises ``ValueError``
    naming the entry that is neither."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or network") from None
    return tuple(networks)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CMDBGRAPH_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite+aiosqlite:///file or postgresql+asyncpg://...",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: str = Field("json", pattern="^(json|text)$")
    auth: bool = Field(True, description="Require and check credentials on every call.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Peer addresses or networks (10.0.0.7, 10.0.0.0/8) whose X-Forwarded-For "
        "and native X-Bkcmdb-* identity headers are trusted; nobody else's are.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    apigw_public_key: str = Field(
        "",
        description="The BlueKing API gateway's public key (PEM text, or the path of a PEM "
        "file): a request on a native route carrying a valid X-Bkapi-JWT is the gateway's, "
        "its caller the token's, its reply in the gateway's envelope. Empty: the header is "
        "ignored (upstream with its JWT check off).",
    )

    # Limits that protect the server.
    max_batch_size: int = Field(200, ge=1, le=200)
    max_page_size: int = Field(500, ge=1)
    default_page_size: int = Field(50, ge=1)
    max_query_depth: int = Field(10, ge=1)
    max_aliases: int = Field(30, ge=1)
    max_tokens: int = Field(10_000, ge=1)
    max_query_cost: int = Field(
        10_000,
        ge=1,
        description="The most fields a GraphQL reply may hold, computed before execution "
        "from page sizes times nesting.",
    )
    default_nested_page_size: int = Field(10, ge=1, description="Associations per instance.")
    max_nested_page_size: int = Field(200, ge=1)
    topology_max_depth: int = Field(
        6, ge=1, description="The most associations a topology follows from its instance."
    )
    topology_max_nodes: int = Field(
        1_000,
        ge=1,
        description="The most instances (and associations) a topology or impact answers: "
        "maxNodes' maximum.",
    )
    topology_default_nodes: int = Field(
        200,
        ge=1,
        description="maxNodes when not given (at most topology_max_nodes): the query cost "
        "counts a topology's lists at this size.",
    )
    max_filter_length: int = Field(
        1_000, ge=1, description="Characters in a free-text filter such as nameContains."
    )
    max_body_bytes: int = Field(1_048_576, ge=1024)
    request_timeout_seconds: float = Field(30.0, gt=0)
    idempotency_ttl_seconds: int = Field(86_400, ge=1, description="How long keys are kept.")
    watch_wait_seconds: float = Field(
        20.0,
        gt=0,
        description="How long a resource_watch with a cursor waits for an event before it "
        "answers that none came (upstream: 20 s); at most three quarters of the request "
        "timeout, whatever is set here.",
    )
    event_retention_days: float = Field(
        7.0, gt=0, description="How long events are kept; older cursors answer 1103007."
    )
    max_watches: int = Field(
        1_000, ge=1, description="Watches a process holds open at once; more answer 1199997."
    )
    max_subscriptions: int = Field(
        1_000,
        ge=1,
        description="GraphQL subscriptions a process follows at once; more are refused "
        "with TOO_MANY_REQUESTS (1199997).",
    )
    max_subscriptions_per_connection: int = Field(
        20, ge=1, description="Operations one websocket runs at once; more are refused."
    )
    subscription_send_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a message to a subscriber may wait for the client to read it; "
        "then the connection is closed with 4429 (the client resumes by cursor).",
    )
    websocket_init_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a websocket may take to send connection_init; then 4408.",
    )
    graphiql: bool = True
    introspection: bool = True
    persisted_queries: Literal["off", "auto", "allowlist"] = Field(
        "auto",
        description="off: no persisted queries; auto: automatic persisted queries (Apollo's "
        "APQ protocol: a client sends a document's SHA-256, and the document once when the "
        "server does not know it); allowlist: only documents registered with `cmdbgraph "
        "queries register` run (by hash or by their full text), clients store nothing.",
    )
    max_persisted_queries: int = Field(
        10_000,
        ge=1,
        description="Documents kept for automatic persisted queries; beyond, the oldest are "
        "dropped (a client sends a dropped one again). Registered documents do not count.",
    )

    # Database tuning.
    db_pool_size: int = Field(10, ge=1)
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)
    database_pooler: Literal["none", "pgbouncer"] = Field(
        "none",
        description="What database_url leads to. none: PostgreSQL itself (or a pooler in "
        "session mode). pgbouncer: a pooler in transaction mode (PgBouncer's pool_mode = "
        "transaction, or the like), whose server connections each transaction may get "
        "another of: no statement stays prepared beyond its transaction, only startup "
        "parameters a pooler passes on are sent, and LISTEN goes to database_listen_url.",
    )
    database_listen_url: str = Field(
        "",
        description="PostgreSQL URL, straight to the server, on which each process LISTENs "
        "for the commits of the others (the change stream). Empty: database_url, except "
        "behind a transaction pooler (database_pooler), where notifications never arrive: "
        "watchers then read the newest event id a few times a second instead.",
    )

    @field_validator("database_url", mode="before")
    @classmethod
    def _database_url(cls, value: object) -> object:
        return normalize_database_url(value) if isinstance(value, str) else value

    @field_validator("database_listen_url", mode="before")
    @classmethod
    def _listen_url(cls, value: object) -> object:
        """Empty, or a PostgreSQL URL (with the service's driver, as ``database_url``)."""
        if not isinstance(value, str):
            return value
        if not value.strip():
            return ""
        url = normalize_database_url(value)
        if not url.startswith("postgresql"):
            raise ValueError("LISTEN needs a PostgreSQL URL (postgresql://...)")
        return url

    @field_validator("database_pooler")
    @classmethod
    def _pooler_needs_postgresql(cls, value: str, info: ValidationInfo) -> str:
        if value != "none" and str(info.data.get("database_url", "")).startswith("sqlite"):
            raise ValueError(
                "a pooler stands in front of PostgreSQL: the database URL is SQLite's "
                "(CMDBGRAPH_DATABASE_URL)"
            )
        return value

    @field_validator("log_level", "persisted_queries", "database_pooler", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies", "cors_origins", mode="before")
    @classmethod
    def _list(cls, value: object) -> object:
        """A JSON list, or the items separated by commas."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return orjson.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @field_validator("apigw_public_key")
    @classmethod
    def _public_key(cls, value: str) -> str:
        """PEM text of an RSA public key (read from the file when a path is given)."""
        if not value.strip():
            return ""
        text = value.strip()
        if not text.startswith("-----BEGIN"):
            try:
                text = Path(text).read_text(encoding="utf-8")
            except OSError as error:
                raise ValueError(f"cannot read the key file {value!r}: {error.strerror}") from None
        try:
            key = load_pem_public_key(text.encode())
        except ValueError:
            raise ValueError("not a PEM public key") from None
        if not isinstance(key, RSAPublicKey):
            raise ValueError("not an RSA public key (the gateway signs with RSA)")
        return text

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
