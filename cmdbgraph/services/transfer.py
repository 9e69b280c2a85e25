"""Bulk import and export of instance associations (CSV or JSON lines).

Import reads the file a chunk at a time (the next chunk in a thread while this one is
written), cuts it into batches of consecutive rows of one model association, and sends each
batch through a ``Target``: the local database (the services, thousands of rows a
transaction) or a running server (``cmdbgraph.remote``, upstream's 200 a call). Either way
every row is decided as consecutive batches of 200 in file order would decide it. Rows already
present come back as "already exists", so a second run creates nothing new. Every refused or
failed row is reported with its line number, in the file's own columns: the report, once
fixed, imports again.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Protocol

import orjson

from cmdbgraph.db.engine import Database
from cmdbgraph.services import associations, catalog, instances
from cmdbgraph.services.caller import Caller
from cmdbgraph.services.errors import EN, CmdbError, ErrorCode, render
from cmdbgraph.services.limits import IMPORT_CHUNK, IMPORT_TRANSACTION, Limits
from cmdbgraph.services.records import ModelAssociation

ID_COLUMNS = ("bk_obj_asst_id", "bk_inst_id", "bk_asst_inst_id")
NAME_COLUMNS = ("bk_obj_asst_id", "bk_inst_name", "bk_asst_inst_name")
# What the error report adds to the import's own columns: importing the report again (once
# its rows are fixed) reads the import's columns and ignores these.
REPORT_COLUMNS = ("line", "code", "message")
READ_CHUNK = 5_000  # rows read at a time (in a thread, one chunk ahead of the writes)

_ID = re.compile(r"\s*-?[0-9]+\s*")


class ImportFileError(Exception):
    """The file cannot be imported as it is (no header, wrong columns, not UTF-8)."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    bk_obj_asst_id: str
    source: int | str  # an id, or a name with --by-name
    target: int | str


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that was refused or failed, with its cells as the file has them (refused) or as
    they were sent (failed), its line number, and upstream's code and English message."""

    line: int
    bk_obj_asst_id: object
    source: object
    target: object
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Chunk:
    rows: list[Row]
    refused: list[RowError]
    last_line: int  # the file's last line read
    position: int | None  # bytes of the file read so far, when known


@dataclass
class ImportReport:
    created: int = 0
    already_present: int = 0
    errors: list[RowError] = field(default_factory=list)
    last_line: int = 0  # every row up to this line of the file is done
    position: float = 0.0  # bytes of the file done, when known (interpolated within a chunk)

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def rows(self) -> int:
        """Rows done: created, already present or failed (refused while reading included)."""
        return self.created + self.already_present + self.failed


class Target(Protocol):
    """Where batches go: the local database or a running server."""

    batch_size: int  # rows sent at a time

    async def model_association(self, bk_obj_asst_id: str) -> ModelAssociation | None: ...

    async def resolve_names(self, bk_obj_id: str, names: list[str]) -> dict[str, int]: ...

    async def create(
        self, model_association: ModelAssociation, details: list[associations.Detail]
    ) -> list[tuple[int | None, int | None, str | None]]:
        """Per detail: (new id, error code, error message); raises CmdbError for the batch."""
        ...


class LocalTarget:
    """Writes through the services into the configured database, ``IMPORT_TRANSACTION`` rows
    a transaction: one batch create decides its items in order exactly as consecutive
    batches of 200 would (each sees what the ones before it wrote), and one transaction
    instead of 25 is most of what makes a local import fast."""

    batch_size = IMPORT_TRANSACTION

    def __init__(self, db: Database, caller: Caller) -> None:
        self.db = db
        self.caller = caller
        self._model_associations: dict[str, ModelAssociation | None] = {}
        self._limits = Limits(max_batch_size=IMPORT_TRANSACTION)

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
            limits=self._limits,
        )
        return [
            (
                item.association.id if item.association else None,
                item.error.value if item.error else None,
                item.message(EN),
            )
            for item in result.items
        ]


def detect_format(path: str, given: str | None, head: bytes = b"") -> str:
    """``given``; else by the file's suffix; else by its first bytes (``head``, as standard
    input has no name): JSON lines when the first character is ``{``, CSV otherwise."""
    if given:
        return given
    lowered = path.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith((".csv", ".txt")):
        return "csv"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


class RowReader:
    """The rows of an import file, a chunk at a time. A row that cannot be sent as it is (a
    cell missing or not a number, a line that is not a JSON object) is refused with its line
    number and its cells as the file has them; a blank line is no row."""

    def __init__(
        self,
        handle: IO[str],
        fmt: str,
        *,
        by_name: bool,
        position: Callable[[], int | None] = lambda: None,
    ) -> None:
        self.by_name = by_name
        self.columns = NAME_COLUMNS if by_name else ID_COLUMNS
        self._records = (
            _csv_records(handle, self.columns, by_name)
            if fmt == "csv"
            else _jsonl_records(handle, self.columns)
        )
        self._position = position
        self._stop: ImportFileError | None = None

    def chunk(self, size: int = READ_CHUNK) -> Chunk | None:
        """The next ``size`` rows (or fewer at the end); ``None`` once the file is read. A
        line that stops the import ends the chunk before it: the rows before it are imported,
        and the next call raises ``ImportFileError``."""
        if self._stop is not None:
            raise self._stop
        rows: list[Row] = []
        refused: list[RowError] = []
        last_line = 0
        try:
            for last_line, cells in self._records:  # noqa: B007 - the last one is kept
                row = _row(last_line, cells, self.columns, self.by_name)
                if isinstance(row, Row):
                    rows.append(row)
                else:
                    refused.append(row)
                if len(rows) + len(refused) == size:
                    break
        except csv.Error as error:
            self._stop = ImportFileError(
                f"the CSV file cannot be read after line {last_line}: {error}"
            )
        except ImportFileError as error:
            self._stop = error
        if self._stop is not None and not rows and not refused:
            raise self._stop
        if not rows and not refused:
            return None
        return Chunk(rows, refused, last_line, self._position())


def _csv_records(
    handle: IO[str], columns: tuple[str, ...], by_name: bool
) -> Iterator[tuple[int, tuple | None]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise ImportFileError(
            f"the file is empty: its first line names the columns {_list(columns)}"
        )
    _require_utf8(reader.line_num, *header)
    names = [name.strip() for name in header]
    missing = [column for column in columns if column not in names]
    if missing:
        raise ImportFileError(_missing_columns(missing, names, by_name))
    indexes = [names.index(column) for column in columns]
    width = max(indexes) + 1
    for cells in reader:
        if not cells:
            continue  # a blank line
        _require_utf8(reader.line_num, *cells)
        if len(cells) < width:
            cells = cells + [None] * (width - len(cells))  # type: ignore[list-item]
        yield reader.line_num, tuple(cells[i] for i in indexes)


def _require_utf8(line: int, *texts: str) -> None:
    """The file is read with ``surrogateescape``: a byte that is not UTF-8 stops the import
    at its own line (a strict decoder would fail on the block being read, lines further on)."""
    for text in texts:
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ImportFileError(
                    f"line {line} is not UTF-8: save the file as UTF-8 and import it again "
                    "(rows already present are skipped)"
                ) from None


def _missing_columns(missing: list[str], names: list[str], by_name: bool) -> str:
    if not by_name and set(NAME_COLUMNS) <= set(names):
        return f"the file names instances ({_list(NAME_COLUMNS[1:])}): import it with --by-name"
    if by_name and set(ID_COLUMNS) <= set(names):
        return f"the file has instance ids ({_list(ID_COLUMNS[1:])}): import it without --by-name"
    expected = NAME_COLUMNS if by_name else ID_COLUMNS
    return (
        f"the file has no column {_list(missing)}: its first line names the columns "
        f"{_list(expected)} (it has {_list(names[:8]) or 'none'})"
    )


def _list(names) -> str:
    return ",".join(names)


def _jsonl_records(handle: IO[str], columns: tuple[str, ...]) -> Iterator[tuple[int, tuple | None]]:
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        _require_utf8(number, text)
        try:
            record: object = orjson.loads(text)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            yield number, None
            continue
        yield number, tuple(record.get(column) for column in columns)


def _row(line: int, cells: tuple | None, columns: tuple[str, ...], by_name: bool) -> Row | RowError:
    """The row of ``cells``, or why it is refused."""
    if cells is None:
        return _refused(line, (None, None, None), ErrorCode.JSON_INVALID)
    asst, source, target = cells
    if not isinstance(asst, str) or not asst.strip():
        return _refused(line, cells, ErrorCode.PARAMETER_INVALID, (columns[0],))
    values: list[int | str] = []
    for column, value in zip(columns[1:], (source, target), strict=True):
        if by_name:
            if not isinstance(value, str) or not value.strip():
                return _refused(line, cells, ErrorCode.PARAMETER_INVALID, (column,))
            values.append(value.strip())
        else:
            number = _as_id(value)
            if number is None:
                return _refused(line, cells, ErrorCode.PARAMETER_INVALID, (column,))
            values.append(number)
    return Row(line, asst.strip(), values[0], values[1])


def _refused(line: int, cells: tuple, code: ErrorCode, args: tuple = ()) -> RowError:
    asst, source, target = ("" if cell is None else cell for cell in cells)
    return RowError(line, asst, source, target, code.value, render(code, args, EN))


def _as_id(value: object) -> int | None:
    """A 64-bit id from a JSON number or a string of digits (nothing else: no ``1.0``,
    ``1e3``, ``1_000`` or other scripts' digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ID.fullmatch(value):
        number = int(value)
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


async def import_rows(
    target: Target,
    reader: RowReader,
    report: ImportReport,
    *,
    progress: Callable[[ImportReport], None] = lambda report: None,
) -> None:
    """Send every row of ``reader`` through ``target`` in file order, ``target.batch_size`` at
    a time; ``report`` holds what is done and ``progress`` is called after every batch. The
    next chunk is read (in a thread) while the rows of this one are written."""
    size = max(READ_CHUNK, target.batch_size)
    ahead = _read_ahead(reader, size)
    try:
        while (chunk := await ahead) is not None:
            ahead = _read_ahead(reader, size)
            start, total, done = report.position, len(chunk.rows) + len(chunk.refused), 0
            for batch in batches(chunk.rows, target.batch_size):
                await _import_batch(target, batch, by_name=reader.by_name, report=report)
                done += len(batch)
                if chunk.position is not None:
                    report.position = start + (chunk.position - start) * done / total
                progress(report)
            report.errors.extend(chunk.refused)
            report.last_line = chunk.last_line
            if chunk.position is not None:
                report.position = chunk.position
            progress(report)
    finally:
        ahead.cancel()


def _read_ahead(reader: RowReader, size: int) -> asyncio.Future[Chunk | None]:
    ahead = asyncio.ensure_future(asyncio.to_thread(reader.chunk, size))
    # Abandoned (the import stopped): its outcome is of no interest, and no warning either.
    ahead.add_done_callback(lambda done: done.cancelled() or done.exception())
    return ahead


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


def write_error_report(errors: list[RowError], handle: IO[str], fmt: str, *, by_name: bool) -> None:
    """The refused and failed rows in line order, in the import's own columns (so that the
    report, once fixed, can be imported again) followed by line, code and message."""
    columns = (NAME_COLUMNS if by_name else ID_COLUMNS) + REPORT_COLUMNS
    ordered = sorted(errors, key=lambda e: e.line)
    if fmt == "jsonl":
        for e in ordered:
            values = (e.bk_obj_asst_id, e.source, e.target, e.line, e.code, e.message)
            handle.write(orjson.dumps(dict(zip(columns, values, strict=True))).decode() + "\n")
        return
    writer = csv.writer(handle)
    writer.writerow(columns)
    for e in ordered:
        writer.writerow([e.bk_obj_asst_id, e.source, e.target, e.line, e.code, e.message])


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
