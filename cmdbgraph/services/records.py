"""The records services hand out: plain immutable values built from database rows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Items built between two turns of the event loop: about 5 ms of work.
ITEMS_PER_TURN = 1_000


async def build_all(rows: Iterable[Any], build: Callable[[Any], R]) -> list[R]:
    """``[build(row) for row in rows]``, letting other requests run every ``ITEMS_PER_TURN``
    rows: a large read never holds the event loop for long."""
    built: list[R] = []
    for count, row in enumerate(rows, 1):
        built.append(build(row))
        if count % ITEMS_PER_TURN == 0:
            await asyncio.sleep(0)
    return built


Record = TypeVar("Record", bound="_FromRow")


class _FromRow:
    @classmethod
    def from_row(cls: type[Record], row: Any) -> Record:
        mapping = row._mapping
        return cls(**{name: mapping[name] for name in field_names(cls)})


def field_names(record_type: type) -> tuple[str, ...]:
    """The fields of a record type, in order (they name the columns it is read from)."""
    return tuple(f.name for f in fields(record_type))


@dataclass(frozen=True, slots=True)
class Model(_FromRow):
    id: int
    bk_obj_id: str
    bk_obj_name: str
    bk_classification_id: str
    bk_obj_icon: str
    ispre: bool
    bk_ispaused: bool
    bk_supplier_account: str
    creator: str
    modifier: str
    create_time: datetime
    last_time: datetime
    bk_ishidden: bool
    position: str
    description: str
    obj_sort_number: int


@dataclass(frozen=True, slots=True)
class AssociationKind(_FromRow):
    id: int
    bk_asst_id: str
    bk_asst_name: str
    bk_supplier_account: str
    src_des: str
    dest_des: str
    direction: str
    ispre: bool


@dataclass(frozen=True, slots=True)
class ModelAssociation(_FromRow):
    id: int
    bk_obj_asst_id: str
    bk_obj_asst_name: str
    bk_obj_id: str
    bk_asst_obj_id: str
    bk_asst_id: str
    mapping: str
    on_delete: str
    ispre: bool
    bk_supplier_account: str


@dataclass(frozen=True, slots=True)
class Instance(_FromRow):
    bk_inst_id: int
    bk_obj_id: str
    bk_inst_name: str
    attributes: dict
    bk_supplier_account: str
    creator: str
    create_time: datetime
    last_time: datetime


@dataclass(frozen=True, slots=True)
class InstAssociation(_FromRow):
    id: int
    bk_obj_asst_id: str
    bk_asst_id: str
    bk_obj_id: str
    bk_inst_id: int
    bk_asst_obj_id: str
    bk_asst_inst_id: int
    bk_supplier_account: str
    bk_biz_id: int
    creator: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry(_FromRow):
    id: int
    audit_type: str
    resource_type: str
    action: str
    resource_id: int
    resource_name: str
    operation_detail: dict
    bk_username: str
    bk_supplier_account: str
    app_code: str
    request_id: str
    operation_time: datetime


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    total_count: int
    items: list[T]
