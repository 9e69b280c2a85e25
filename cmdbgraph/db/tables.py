"""The tables, as SQLAlchemy Core objects. Migrations in ``migrations/versions`` create them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

# Integer primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
# Every id and integer column holds a signed 64-bit value (SQLite's INTEGER is 64-bit too).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def text_length(column: Column) -> int:
    """How many characters a text column holds."""
    length = getattr(column.type, "length", None)
    assert isinstance(length, int), f"{column} has no length"
    return length


def is_int64(value: object) -> bool:
    """``value`` is an integer (not a bool) that an id or integer column can hold."""
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


Id = BigInteger().with_variant(Integer(), "sqlite")
# Attributes are JSONB on PostgreSQL, so conditions on them compare typed JSON values.
Attributes = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """A timestamp in UTC, always handed back with its offset (SQLite stores none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

MAPPINGS = ("1:1", "1:n", "n:n")
ON_DELETE = ("none", "delete_src", "delete_dest")

models = Table(
    "models",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bk_obj_id", String(64), nullable=False, unique=True),
    Column("bk_obj_name", String(128), nullable=False),
    Column("bk_classification_id", String(64), nullable=False, server_default="bk_uncategorized"),
    Column("bk_obj_icon", String(64), nullable=False, server_default="icon-cc-default"),
    Column("ispre", Boolean, nullable=False, server_default=text("false")),
    Column("bk_ispaused", Boolean, nullable=False, server_default=text("false")),
    Column("bk_supplier_account", String(32), nullable=False, server_default="0"),
    Column("creator", String(64), nullable=False, server_default="cc_system"),
    Column("modifier", String(64), nullable=False, server_default="cc_system"),
    Column("create_time", UTCDateTime(), nullable=False),
    Column("last_time", UTCDateTime(), nullable=False),
    # Upstream's fields of a model that this service keeps but does not use.
    Column("bk_ishidden", Boolean, nullable=False, server_default=text("false")),
    Column("position", String(2048), nullable=False, server_default=""),
    Column("description", String(256), nullable=False, server_default=""),
    Column("obj_sort_number", BigInteger, nullable=False, server_default="0"),
    sqlite_autoincrement=True,
)

association_kinds = Table(
    "association_kinds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bk_asst_id", String(128), nullable=False, unique=True),
    Column("bk_asst_name", String(128), nullable=False),
    Column("src_des", String(128), nullable=False, server_default=""),
    Column("dest_des", String(128), nullable=False, server_default=""),
    Column("direction", String(32), nullable=False, server_default="src_to_dest"),
    Column("ispre", Boolean, nullable=False, server_default=text("false")),
    Column("bk_supplier_account", String(32), nullable=False, server_default="0"),
    CheckConstraint("direction IN ('none', 'src_to_dest', 'bidirectional')", name="direction"),
    sqlite_autoincrement=True,
)

model_associations = Table(
    "model_associations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bk_obj_asst_id", String(128), nullable=False, unique=True),
    Column("bk_obj_asst_name", String(128), nullable=False, server_default=""),
    Column("bk_obj_id", String(64), ForeignKey("models.bk_obj_id"), nullable=False),
    Column("bk_asst_obj_id", String(64), ForeignKey("models.bk_obj_id"), nullable=False),
    Column("bk_asst_id", String(128), ForeignKey("association_kinds.bk_asst_id"), nullable=False),
    Column("mapping", String(8), nullable=False),
    Column("on_delete", String(16), nullable=False, server_default="none"),
    Column("ispre", Boolean, nullable=False, server_default=text("false")),
    Column("bk_supplier_account", String(32), nullable=False, server_default="0"),
    Column("create_time", UTCDateTime(), nullable=False),
    CheckConstraint("mapping IN ('1:1', '1:n', 'n:n')", name="mapping"),
    CheckConstraint("on_delete IN ('none', 'delete_src', 'delete_dest')", name="on_delete"),
    # The target of inst_associations' composite foreign key (see there).
    UniqueConstraint(
        "bk_obj_asst_id",
        "bk_obj_id",
        "bk_asst_obj_id",
        "bk_asst_id",
        "mapping",
        name="uq_model_associations_definition",
    ),
    Index(None, "bk_obj_id"),
    Index(None, "bk_asst_obj_id"),
    sqlite_autoincrement=True,
)

instances = Table(
    "instances",
    metadata,
    Column("bk_inst_id", Id, primary_key=True, autoincrement=True),
    Column("bk_obj_id", String(64), ForeignKey("models.bk_obj_id"), nullable=False),
    Column("bk_inst_name", String(256), nullable=False),
    Column("attributes", Attributes, nullable=False),
    Column("bk_supplier_account", String(32), nullable=False, server_default="0"),
    Column("creator", String(64), nullable=False, server_default=""),
    Column("create_time", UTCDateTime(), nullable=False),
    Column("last_time", UTCDateTime(), nullable=False),
    Index(None, "bk_obj_id", "bk_inst_id"),
    UniqueConstraint("bk_obj_id", "bk_inst_name"),
    sqlite_autoincrement=True,
)

# The mapping of the model association is copied onto each row so that the database itself can
# enforce it with partial unique indexes, under any number of concurrent writers:
#   1:1  one association per source and one per target within a model association;
#   1:n  one source per target within a model association.
inst_associations = Table(
    "inst_associations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bk_obj_asst_id", String(128), nullable=False),
    Column("bk_asst_id", String(128), nullable=False),
    Column("bk_obj_id", String(64), nullable=False),
    Column("bk_inst_id", Id, ForeignKey("instances.bk_inst_id"), nullable=False),
    Column("bk_asst_obj_id", String(64), nullable=False),
    Column("bk_asst_inst_id", Id, ForeignKey("instances.bk_inst_id"), nullable=False),
    Column("mapping", String(8), nullable=False),
    Column("bk_supplier_account", String(32), nullable=False, server_default="0"),
    Column("bk_biz_id", BigInteger, nullable=False, server_default="0"),
    Column("creator", String(64), nullable=False, server_default=""),
    Column("create_time", UTCDateTime(), nullable=False),
    UniqueConstraint("bk_obj_asst_id", "bk_inst_id", "bk_asst_inst_id"),
    CheckConstraint("mapping IN ('1:1', '1:n', 'n:n')", name="mapping"),
    # The row's copies of its model association's models, kind and mapping must be the
    # model association's own: the partial unique indexes below trust ``mapping``.
    ForeignKeyConstraint(
        ["bk_obj_asst_id", "bk_obj_id", "bk_asst_obj_id", "bk_asst_id", "mapping"],
        [
            "model_associations.bk_obj_asst_id",
            "model_associations.bk_obj_id",
            "model_associations.bk_asst_obj_id",
            "model_associations.bk_asst_id",
            "model_associations.mapping",
        ],
        name="fk_inst_associations_model_association",
    ),
    Index("ix_inst_associations_target", "bk_obj_asst_id", "bk_asst_inst_id"),
    # Each side ordered by id: an instance's associations are paged by id (migration 0009).
    Index("ix_inst_associations_src_inst", "bk_inst_id", "id"),
    Index("ix_inst_associations_dest_inst", "bk_asst_inst_id", "id"),
    Index(
        "uq_inst_associations_one_to_one_source",
        "bk_obj_asst_id",
        "bk_inst_id",
        unique=True,
        sqlite_where=text("mapping = '1:1'"),
        postgresql_where=text("mapping = '1:1'"),
    ),
    Index(
        "uq_inst_associations_single_source_per_target",
        "bk_obj_asst_id",
        "bk_asst_inst_id",
        unique=True,
        sqlite_where=text("mapping IN ('1:1', '1:n')"),
        postgresql_where=text("mapping IN ('1:1', '1:n')"),
    ),
    sqlite_autoincrement=True,
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("audit_type", String(32), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("resource_id", BigInteger, nullable=False),
    Column("resource_name", String(256), nullable=False, server_default=""),
    Column("operation_detail", JSON, nullable=False),
    Column("bk_username", String(64), nullable=False, server_default=""),
    Column("bk_supplier_account", String(32), nullable=False, server_default="0"),
    Column("app_code", String(64), nullable=False, server_default=""),
    Column("request_id", String(64), nullable=False, server_default=""),
    Column("operation_time", UTCDateTime(), nullable=False),
    Index(None, "resource_type", "resource_id"),
    Index(None, "operation_time"),
    sqlite_autoincrement=True,
)


# Authentication and permission -------------------------------------------------------------

apps = Table(
    "apps",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("app_code", String(64), nullable=False, unique=True),
    # A password hash (scrypt), never the secret.
    Column("secret_hash", String(256), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("create_time", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("bk_username", String(64), nullable=False, unique=True),
    Column("create_time", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # SHA-256 of the token: enough for random tokens, and lets a request find its row.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("bk_username", String(64), ForeignKey("users.bk_username"), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    Column("revoked", Boolean, nullable=False, server_default=text("false")),
    Column("create_time", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)

# subject: a bk_username, or "*" for everyone. bk_obj_id: a model, or "*" for every model.
# bk_inst_id: one instance, or 0 for every instance of the model.
grants = Table(
    "grants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("subject", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("bk_obj_id", String(64), nullable=False),
    Column("bk_inst_id", BigInteger, nullable=False, server_default="0"),
    Column("create_time", UTCDateTime(), nullable=False),
    UniqueConstraint("subject", "action", "bk_obj_id", "bk_inst_id"),
    sqlite_autoincrement=True,
)


# A retried batch with the same key returns the first reply (see services/associations.py).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(320), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("reply", JSON, nullable=False),
    Column("create_time", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "expires_at"),
)


# The change stream: one row per change of a watched resource, written in the transaction of
# the change, its id the position a cursor encodes. Ids follow commit order: writers take a
# lock before they insert events (services/events.py), so no lower id commits after a higher.
# Readers go through the primary key (after an id, in id order; the resource is a filter: one
# resource is watched), and by create_time for the retention and a start moment. No other
# index: every one is written with each of the batch's events (migration 0007 dropped the one
# on (resource, id), which ordered the rows as the primary key does).
events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("resource", String(32), nullable=False),
    Column("event_type", String(16), nullable=False),
    Column("resource_id", BigInteger, nullable=False),
    # The models the changed row is about (an association's source and target model).
    Column("bk_obj_id", String(64), nullable=False, server_default=""),
    Column("bk_asst_obj_id", String(64), nullable=False, server_default=""),
    Column("detail", JSON, nullable=False),
    Column("create_time", UTCDateTime(), nullable=False),
    Index(None, "create_time"),
    sqlite_autoincrement=True,
)


# GraphQL documents kept by their SHA-256 (hex): those clients stored through automatic persisted
# queries (registered false, the oldest dropped beyond CMDBGRAPH_MAX_PERSISTED_QUERIES), and
# those an operator registered with `cmdbgraph queries register` (registered true: the allow-list,
# never dropped). See services/persisted_queries.py.
persisted_queries = Table(
    "persisted_queries",
    metadata,
    Column("sha256_hash", String(64), primary_key=True),
    Column("document", Text, nullable=False),
    Column("registered", Boolean, nullable=False, server_default=text("false")),
    Column("create_time", UTCDateTime(), nullable=False),
    Index(None, "registered", "create_time"),
)
