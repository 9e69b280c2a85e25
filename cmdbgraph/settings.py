"""Configuration: environment variables prefixed ``CMDBGRAPH_`` (the CLI options mirror them)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///cmdbgraph.sqlite3"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CMDBGRAPH_", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite+aiosqlite:///file or postgresql+asyncpg://...",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: str = "info"
    log_format: str = Field("json", pattern="^(json|text)$")
    auth: bool = Field(True, description="Require and check credentials on every call.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Client addresses whose native X-Bkcmdb-* identity headers are trusted.",
    )
    cors_origins: list[str] = Field(default_factory=list)

    # Limits that protect the server.
    max_batch_size: int = Field(200, ge=1, le=200)
    max_page_size: int = Field(500, ge=1)
    default_page_size: int = Field(50, ge=1)
    max_query_depth: int = Field(10, ge=1)
    max_aliases: int = Field(30, ge=1)
    max_tokens: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    request_timeout_seconds: float = Field(30.0, gt=0)
    idempotency_ttl_seconds: int = Field(86_400, ge=1, description="How long keys are kept.")
    graphiql: bool = True
    introspection: bool = True

    # Database tuning.
    db_pool_size: int = Field(10, ge=1)
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
