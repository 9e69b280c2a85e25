"""Bulk import and export of instance associations (CSV or JSON lines).

Import streams the file, cuts it into batches of up to 200 consecutive rows of the same model
association, and sends each batch through a ``Target``: the local database (the services) or
a running server (``cmdbgraph.remote``). Rows already present come back as "already exists",
so a second run creates nothing new. Every failed row is reported with its line number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Protocol

import orjson

from cmdbgraph.db.engine import Database
from cmdbgraph.services import associations, catalog, instances
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import EN, CmdbError, ErrorCode, render
from cmdbgraph.services.limits import IMPORT_CHUNK
from cmdbgraph.services.records import ModelAssociation

ID_COLUMNS = ("bk_obj_asst_id", "bk_inst_id", "bk_asst_inst_id")
NAME_COLUMNS = ("bk_obj_asst_id", "bk_inst_name", "bk_asst_inst_name")


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    bk_obj_asst_id: str
    source: int | str  # an id, or a name with --by-name
    target: int | str


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    bk_obj_asst_id: str
    source: object
    target: object
    code: int
    message: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    already_present: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)


class Target(Protocol):
    """Where batches go: the local database or a running server."""

    async def model_association(self, bk_obj_asst_id: str) -> ModelAssociation | None: ...

    async def resolve_names(self, bk_obj_id: str, names: list[str]) -> dict[str, int]: ...

    async def create(
        self, model_association: ModelAssociation, details: list[associations.Detail]
    ) -> list[tuple[int | None, int | None, str | None]]:
        """Per detail: (new id, error code, error message); raises CmdbError for the batch."""
        ...


class LocalTarget:
    """Writes through the services into the configured database."""

    def __init__(self, db: Database, caller: Caller) -> None:
        self.db = db
        self.caller = caller
        self._model_associations: dict[str, ModelAssociation | None] = {}

    async def model_association(self, bk_obj_asst_id: str) -> ModelAssociation | None:
        if bk_obj_asst_id not in self._model_associations:
            found = await catalog.list_model_associations(
                self.db, catalog.ModelAssociationFilter(bk_obj_asst_id=bk_obj_asst_id)
            )
            self._model_associations[bk_obj_asst_id] = found[0] if found else None
        return self._model_associations[bk_obj_asst_id]

    async def resolve_names(self, bk_obj_id: str, names: list[str]) -> dict[str, int]:
        return await instances.ids_by_name(self.db, bk_obj_id, names)

    async def create(self, model_association, details):
        result = await associations.batch_create(
            self.db,
            self.caller,
            associations.BatchCreateRequest(
                bk_obj_id=model_association.bk_obj_id,
                bk_asst_obj_id=model_association.bk_asst_obj_id,
                bk_obj_asst_id=model_association.bk_obj_asst_id,
                details=details,
            ),
        )
        return [
            (
                item.association.id if item.association else None,
                item.error.value if item.error else None,
                item.message(EN),
            )
            for item in result.items
        ]


def detect_format(path: str, given: str | None) -> str:
    if given:
        return given
    lowered = path.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def read_rows(handle: IO[str], fmt: str, *, by_name: bool, errors: list[RowError]) -> Iterator[Row]:
    """Rows of the file; malformed ones go to ``errors`` with their line number."""
    columns = NAME_COLUMNS if by_name else ID_COLUMNS
    if fmt == "csv":
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise CmdbError(ErrorCode.PARAMETER_INVALID, (",".join(missing),))
        for entry in reader:
            row = _row(reader.line_num, entry, columns, by_name, errors)
            if row is not None:
                yield row
        return
    for line_number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            record: object = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            errors.append(_bad(line_number, {}, ErrorCode.JSON_INVALID))
            continue
        row = _row(line_number, record, columns, by_name, errors)
        if row is not None:
            yield row


def _bad(
    line: int,
    record: dict,
    code: ErrorCode,
    args: tuple = (),
    columns: tuple[str, ...] = ID_COLUMNS,
) -> RowError:
    """A row refused before it was sent, reported with the file's own cells."""
    asst_column, source_column, target_column = columns
    return RowError(
        line=line,
        bk_obj_asst_id=str(record.get(asst_column) or ""),
        source=record.get(source_column) or "",
        target=record.get(target_column) or "",
        code=code.value,
        message=render(code, args, EN),
    )


def _row(
    line: int, record: dict, columns: tuple[str, ...], by_name: bool, errors: list[RowError]
) -> Row | None:
    asst_column, source_column, target_column = columns
    bk_obj_asst_id = record.get(asst_column)
    if not isinstance(bk_obj_asst_id, str) or not bk_obj_asst_id.strip():
        errors.append(_bad(line, record, ErrorCode.PARAMETER_INVALID, (asst_column,), columns))
        return None
    values: list[int | str] = []
    for column in (source_column, target_column):
        value = record.get(column)
        if by_name:
            if not isinstance(value, str) or not value.strip():
                errors.append(_bad(line, record, ErrorCode.PARAMETER_INVALID, (column,), columns))
                return None
            values.append(value.strip())
        else:
            number = _as_id(value)
            if number is None:
                errors.append(_bad(line, record, ErrorCode.PARAMETER_INVALID, (column,), columns))
                return None
            values.append(number)
    return Row(line, bk_obj_asst_id.strip(), values[0], values[1])


def _as_id(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        return None
    return number if -(2**63) <= number < 2**63 else None


def batches(rows: Iterable[Row], size: int = IMPORT_CHUNK) -> Iterator[list[Row]]:
    """Consecutive rows of one model association, at most ``size`` at a time, in order."""
    batch: list[Row] = []
    for row in rows:
        if batch and (len(batch) == size or row.bk_obj_asst_id != batch[0].bk_obj_asst_id):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


async def import_batches(
    target: Target, rows: Iterable[Row], *, by_name: bool, report: ImportReport
) -> AsyncIterator[int]:
    """Send every batch; yields the number of rows done after each so callers show progress."""
    for batch in batches(rows):
        report.rows += len(batch)
        await _import_batch(target, batch, by_name=by_name, report=report)
        yield len(batch)


async def _import_batch(
    target: Target, batch: list[Row], *, by_name: bool, report: ImportReport
) -> None:
    def fail(row: Row, code: int, message: str) -> None:
        report.errors.append(
            RowError(row.line, row.bk_obj_asst_id, row.source, row.target, code, message)
        )

    model_association = await target.model_association(batch[0].bk_obj_asst_id)
    if model_association is None:
        for row in batch:
            fail(
                row,
                ErrorCode.MODEL_ASSOCIATION_NOT_FOUND.value,
                render(ErrorCode.MODEL_ASSOCIATION_NOT_FOUND, (), EN),
            )
        return
    # (the row as the file has it, for reports; its source and target ids)
    sendable = [(row, row.source, row.target) for row in batch]
    if by_name:
        sources = await target.resolve_names(
            model_association.bk_obj_id, sorted({str(r.source) for r in batch})
        )
        targets = await target.resolve_names(
            model_association.bk_asst_obj_id, sorted({str(r.target) for r in batch})
        )
        sendable = []
        for row in batch:
            if row.source not in sources:
                fail(
                    row,
                    ErrorCode.SOURCE_INSTANCE_NOT_FOUND.value,
                    render(ErrorCode.SOURCE_INSTANCE_NOT_FOUND, (), EN),
                )
            elif row.target not in targets:
                fail(
                    row,
                    ErrorCode.TARGET_INSTANCE_NOT_FOUND.value,
                    render(ErrorCode.TARGET_INSTANCE_NOT_FOUND, (), EN),
                )
            else:
                sendable.append((row, sources[row.source], targets[row.target]))
        if not sendable:
            return
    details = [associations.Detail(int(src), int(dest)) for _, src, dest in sendable]
    try:
        outcomes = await target.create(model_association, details)
    except CmdbError as error:
        for row, _, _ in sendable:
            fail(row, error.code.value, error.message(EN))
        return
    for (row, _, _), (new_id, code, message) in zip(sendable, outcomes, strict=True):
        if new_id is not None:
            report.created += 1
        elif code == ErrorCode.ASSOCIATION_ALREADY_EXISTS.value:
            report.already_present += 1
        else:
            fail(row, code or 0, message or "")


def error_report_csv(errors: list[RowError], handle: IO[str]) -> None:
    writer = csv.writer(handle)
    writer.writerow(["line", "bk_obj_asst_id", "source", "target", "code", "message"])
    for e in sorted(errors, key=lambda e: e.line):
        writer.writerow([e.line, e.bk_obj_asst_id, e.source, e.target, e.code, e.message])


# ---------------------------------------------------------------------------------------------
# Export


async def export_rows(
    db: Database, *, bk_obj_asst_id: str | None = None, page_size: int = 5000
) -> AsyncIterator[tuple[str, int, int]]:
    """Every association as (bk_obj_asst_id, bk_inst_id, bk_asst_inst_id), in id order."""
    after = 0
    while True:
        page = await associations.associations_after(
            db, after, limit=page_size, bk_obj_asst_id=bk_obj_asst_id
        )
        if not page:
            return
        for a in page:
            yield a.bk_obj_asst_id, a.bk_inst_id, a.bk_asst_inst_id
        after = page[-1].id


def format_row(row: tuple[str, int, int], fmt: str) -> str:
    if fmt == "jsonl":
        return orjson.dumps(dict(zip(ID_COLUMNS, row, strict=True))).decode() + "\n"
    buffer = io.StringIO()
    csv.writer(buffer).writerow(row)
    return buffer.getvalue()


def header(fmt: str) -> str:
    return ",".join(ID_COLUMNS) + "\r\n" if fmt == "csv" else ""
