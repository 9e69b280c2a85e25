"""`cmdbgraph import associations` and `cmdbgraph export associations`, run as a user runs
them: the command line in a subprocess, against a file database (SQLite) or a PostgreSQL
database, or against a running server (``--url``). Every test runs on both databases.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from cmdbgraph.db.tables import inst_associations
from cmdbgraph.services import associations, catalog
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.services.errors import ErrorCode
from tests.support import upstream
from tests.support.databases import new_instances, open_database, row_counts
from tests.support.servers import uvicorn_server

HEADER = "bk_obj_asst_id,bk_inst_id,bk_asst_inst_id"
BELONG = "bk_switch_belong_host"  # demo, n:n
CONNECT = "bk_switch_connect_host"  # preset, 1:n
DEFAULT = "bk_router_default_bk_firewall"  # demo, 1:1


def english(error: upstream.Upstream) -> tuple[int, str]:
    """Upstream's code and English text (the command reports in English)."""
    return error.code, error.en


SOURCE_MISSING = english(upstream.SOURCE_MISSING)
TARGET_MISSING = english(upstream.TARGET_MISSING)
UNKNOWN_ASSOCIATION = english(upstream.UNKNOWN_ASSOCIATION)
ONE_TO_ONE = english(upstream.ONE_TO_ONE)
ONE_TO_MANY = english(upstream.ONE_TO_MANY)
BAD_JSON = english(upstream.BAD_JSON)


def invalid(name: str) -> tuple[int, str]:
    return english(upstream.invalid(name))


# ---------------------------------------------------------------------------------------------
# Running the command line.


def cmdbgraph(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cmdbgraph.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def summary(done: subprocess.CompletedProcess) -> tuple[int, int, int]:
    """(created, already present, failed) as the import reports them."""
    found = re.findall(r"(\d+) created, (\d+) already present, (\d+) failed", done.stderr)
    assert found, f"no summary in:\n{done.stdout}\n{done.stderr}"
    return tuple(int(n) for n in found[-1])


ID_COLUMNS = ["bk_obj_asst_id", "bk_inst_id", "bk_asst_inst_id"]
NAME_COLUMNS = ["bk_obj_asst_id", "bk_inst_name", "bk_asst_inst_name"]


def error_report(path: Path) -> list[tuple[int, str, str, str, int, str]]:
    """(line, model association, source, target, code, message) of every row of a CSV error
    report, whose columns are the import's own (by id or by name) and line, code, message."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        assert header[3:] == ["line", "code", "message"]
        assert header[:3] in (ID_COLUMNS, NAME_COLUMNS)
        return [(int(a), asst, src, dest, int(e), f) for asst, src, dest, a, e, f in reader]


# ---------------------------------------------------------------------------------------------
# Databases and servers.


async def stored_rows(db, bk_obj_asst_id: str | None = None) -> set[tuple]:
    """Every stored association, without its id."""
    ia = inst_associations.c
    query = select(
        ia.bk_obj_asst_id,
        ia.bk_asst_id,
        ia.bk_obj_id,
        ia.bk_inst_id,
        ia.bk_asst_obj_id,
        ia.bk_asst_inst_id,
        ia.mapping,
    )
    if bk_obj_asst_id is not None:
        query = query.where(ia.bk_obj_asst_id == bk_obj_asst_id)
    async with db.read() as conn:
        return {tuple(row) for row in await conn.execute(query)}


async def store(db, bk_obj_asst_id: str, src: str, dest: str, pairs) -> None:
    for start in range(0, len(pairs), 200):
        result = await associations.batch_create(
            db,
            SYSTEM,
            associations.BatchCreateRequest(
                src,
                dest,
                bk_obj_asst_id,
                [associations.Detail(*p) for p in pairs[start : start + 200]],
            ),
        )
        assert result.failed_count == 0, result.error_msg("en")


@pytest.fixture
def fresh_database_url(backend, fresh_databases) -> str:
    """A second fresh database with the demo data, on the backend under test."""
    return fresh_databases.new(backend, "fresh")


@pytest.fixture
def live_server(backend, request, database_url, tmp_path) -> Iterator[str]:
    """Base URL of a real server on a fresh demo database: ``demo_server`` on SQLite, the same
    on the PostgreSQL database under test."""
    if backend == "sqlite":
        yield request.getfixturevalue("demo_server")
        return
    with uvicorn_server(database_url, tmp_path / "pg-server.log") as base_url:
        yield base_url


# ---------------------------------------------------------------------------------------------
# 100,000 rows from a CSV file, twice.

RACK_SERVER = "imp_rack_belong_imp_server"


async def test_import_of_100000_rows_reports_bad_lines_and_reruns_idempotently(
    db, database_url, tmp_path, backend
):
    started = time.monotonic()
    await catalog.create_model(db, SYSTEM, catalog.NewModel("imp_rack", "Rack"))
    await catalog.create_model(db, SYSTEM, catalog.NewModel("imp_server", "Server"))
    created_asst = await catalog.create_model_association(
        db, SYSTEM, catalog.NewModelAssociation("imp_rack", "imp_server", "belong", "n:n")
    )
    assert created_asst.bk_obj_asst_id == RACK_SERVER
    racks = await new_instances(db, "imp_rack", "rack", 500)
    servers = await new_instances(db, "imp_server", "srv", 200)
    pairs = [(r, s) for r in racks for s in servers]
    assert len(pairs) == 100_000

    lines = [HEADER] + [f"{RACK_SERVER},{r},{s}" for r, s in pairs]
    # Bad rows at known places (index in ``lines`` = line number - 1), inserted front to back
    # so each lands where it is meant to. The blank line is no row: skipped, not reported,
    # and the lines after it keep their numbers.
    bad = {
        12: f"{RACK_SERVER},abc,{servers[0]}",  # not a number
        40_000: f"{RACK_SERVER},888888888,{servers[0]}",  # no such source
        50_000: "",
        60_000: f"imp_rack_run_imp_server,{racks[0]},{servers[0]}",  # no such model association
        99_990: f"{RACK_SERVER},{racks[0]},999999999",  # no such target
    }
    for index in sorted(bad):
        lines.insert(index, bad[index])
    short_row = f"{RACK_SERVER},{racks[1]}"
    lines.append(short_row)
    expected_errors = [
        (12 + 1, RACK_SERVER, "abc", str(servers[0]), *invalid("bk_inst_id")),
        (40_000 + 1, RACK_SERVER, "888888888", str(servers[0]), *SOURCE_MISSING),
        (
            60_000 + 1,
            "imp_rack_run_imp_server",
            str(racks[0]),
            str(servers[0]),
            *UNKNOWN_ASSOCIATION,
        ),
        (99_990 + 1, RACK_SERVER, str(racks[0]), "999999999", *TARGET_MISSING),
        (len(lines), RACK_SERVER, str(racks[1]), "", *invalid("bk_asst_inst_id")),
    ]
    assert lines[-1] == short_row and lines[50_000] == ""
    source = tmp_path / "associations.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = tmp_path / "errors.csv"
    prepared = time.monotonic()

    first = cmdbgraph(
        "import", "associations", str(source), "--errors", str(errors),
        "--database-url", database_url,
    )  # fmt: skip
    first_done = time.monotonic()
    assert first.returncode == 1, first.stderr
    assert summary(first) == (100_000, 0, 5)
    assert error_report(errors) == expected_errors
    assert await stored_rows(db, RACK_SERVER) == {
        (RACK_SERVER, "belong", "imp_rack", r, "imp_server", s, "n:n") for r, s in pairs
    }
    counts = await row_counts(db)

    errors.unlink()
    second = cmdbgraph(
        "import", "associations", str(source), "--errors", str(errors),
        "--database-url", database_url,
    )  # fmt: skip
    second_done = time.monotonic()
    assert second.returncode == 1, second.stderr
    assert summary(second) == (0, 100_000, 5)
    assert error_report(errors) == expected_errors
    assert await row_counts(db) == counts

    timings = (
        f"[{backend}] setup {prepared - started:.1f}s, first import {first_done - prepared:.1f}s, "
        f"second import {second_done - first_done:.1f}s, total {second_done - started:.1f}s"
    )
    print(timings)
    # Well under two minutes on a 2-core machine: the import is set-based, 200 rows a batch.
    assert second_done - started < 100, timings


# ---------------------------------------------------------------------------------------------
# JSON lines, by name.

BY_NAME_LINES = [
    ({"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-01", "bk_asst_inst_name": "10.0.0.1"}, "new"),
    ({"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-02", "bk_asst_inst_name": "10.0.0.2"}, "new"),
    ("", "skipped"),
    (
        {"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-99", "bk_asst_inst_name": "10.0.0.1"},
        SOURCE_MISSING,
    ),
    (
        {"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-01", "bk_asst_inst_name": "10.9.9.9"},
        TARGET_MISSING,
    ),
    ("{not json", BAD_JSON),
    ({"bk_obj_asst_id": DEFAULT, "bk_inst_name": "rt-01", "bk_asst_inst_name": "fw-01"}, "new"),
    (
        {"bk_obj_asst_id": DEFAULT, "bk_inst_name": "rt-02", "bk_asst_inst_name": "fw-01"},
        ONE_TO_ONE,
    ),
    (
        {"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-01", "bk_asst_inst_name": "10.0.0.1"},
        "present",
    ),
    (
        {"bk_obj_asst_id": BELONG, "bk_inst_name": 11, "bk_asst_inst_name": "10.0.0.1"},
        invalid("bk_inst_name"),
    ),
    ([BELONG, "sw-01", "10.0.0.3"], BAD_JSON),
    (
        {"bk_obj_asst_id": BELONG, "bk_inst_name": " sw-03 ", "bk_asst_inst_name": "10.0.0.3"},
        "new",
    ),
    (
        {"bk_obj_asst_id": "bk_switch_run_host", "bk_inst_name": "sw-03", "bk_asst_inst_name": "x"},
        UNKNOWN_ASSOCIATION,
    ),
    ({"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-03"}, invalid("bk_asst_inst_name")),
]


def jsonl(lines) -> str:
    return "".join(
        (line if isinstance(line, str) else json.dumps(line)) + "\n" for line, _ in lines
    )


def expected_failures(lines) -> list[tuple]:
    """The error report's rows for the failed ``lines`` (of a JSON-lines file, by name)."""

    def cell(line, column: str) -> str:
        value = line.get(column, "") if isinstance(line, dict) else ""
        return str(value).strip()

    return [
        (
            number,
            line.get("bk_obj_asst_id", "") if isinstance(line, dict) else "",
            cell(line, "bk_inst_name"),
            cell(line, "bk_asst_inst_name"),
            *outcome,
        )
        for number, (line, outcome) in enumerate(lines, start=1)
        if isinstance(outcome, tuple)
    ]


async def test_jsonl_import_by_name(db, database_url, tmp_path):
    source = tmp_path / "by-name.jsonl"
    source.write_text(jsonl(BY_NAME_LINES), encoding="utf-8")
    errors = tmp_path / "errors.csv"
    before = await stored_rows(db)
    args = ["import", "associations", str(source), "--by-name", "--errors", str(errors)]

    first = cmdbgraph(*args, "--database-url", database_url)
    assert first.returncode == 1, first.stderr
    assert summary(first) == (4, 1, 8)
    # Line, model association, code and message of every failed line (what the report says
    # of the source and target is the next test's subject).
    assert [(r[0], r[1], r[4], r[5]) for r in error_report(errors)] == [
        (r[0], r[1], r[4], r[5]) for r in expected_failures(BY_NAME_LINES)
    ]
    assert await stored_rows(db) - before == {
        (BELONG, "belong", "bk_switch", 11, "host", 21, "n:n"),
        (BELONG, "belong", "bk_switch", 13, "host", 22, "n:n"),
        (BELONG, "belong", "bk_switch", 14, "host", 23, "n:n"),
        (DEFAULT, "default", "bk_router", 31, "bk_firewall", 41, "1:1"),
    }
    counts = await row_counts(db)

    second = cmdbgraph(*args, "--database-url", database_url)
    assert second.returncode == 1, second.stderr
    assert summary(second) == (0, 5, 8)
    assert await row_counts(db) == counts


async def test_by_name_error_report_shows_the_names_of_the_file(db, database_url, tmp_path):
    """A failed row is reported as the file has it, whether it failed before reaching the
    database (an unknown name) or in it (a 1:1 conflict): by name, not by resolved id."""
    source = tmp_path / "by-name.jsonl"
    source.write_text(jsonl(BY_NAME_LINES), encoding="utf-8")
    errors = tmp_path / "errors.csv"
    done = cmdbgraph(
        "import", "associations", str(source), "--by-name", "--errors", str(errors),
        "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert error_report(errors) == expected_failures(BY_NAME_LINES)


# Columns in another order than the export's, in both formats: every cell is found by its name,
# in the rows and in the error report alike.
REORDERED = {
    "csv": (
        "bk_asst_inst_id,bk_inst_id,bk_obj_asst_id\n"
        f"21,abc,{BELONG}\n"
        f"x,11,{BELONG}\n"
        f"22,12,{BELONG}\n"
        f"23,14,{BELONG}\n"
    ),
    "jsonl": "".join(
        json.dumps(record) + "\n"
        for record in [
            {"bk_asst_inst_id": 21, "bk_inst_id": "abc", "bk_obj_asst_id": BELONG},
            {"bk_asst_inst_id": "x", "bk_inst_id": 11, "bk_obj_asst_id": BELONG},
            {"bk_asst_inst_id": 22, "bk_inst_id": 12, "bk_obj_asst_id": BELONG},
            {"bk_asst_inst_id": 23, "bk_inst_id": 14, "bk_obj_asst_id": BELONG},
        ]
    ),
}


@pytest.mark.parametrize("suffix", list(REORDERED))
async def test_columns_are_read_by_name_in_rows_and_in_the_error_report(
    db, database_url, tmp_path, suffix
):
    source = tmp_path / f"reordered.{suffix}"
    source.write_text(REORDERED[suffix], encoding="utf-8")
    errors = tmp_path / "errors.csv"
    before = await stored_rows(db)
    done = cmdbgraph(
        "import", "associations", str(source), "--errors", str(errors),
        "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert summary(done) == (1, 0, 3)
    assert await stored_rows(db) - before == {
        (BELONG, "belong", "bk_switch", 14, "host", 23, "n:n")
    }
    first = 2 if suffix == "csv" else 1
    assert error_report(errors) == [
        (first, BELONG, "abc", "21", *invalid("bk_inst_id")),
        (first + 1, BELONG, "11", "x", *invalid("bk_asst_inst_id")),
        (first + 2, BELONG, "12", "22", *SOURCE_MISSING),
    ]


# ---------------------------------------------------------------------------------------------
# Into a running server.

REMOTE_CSV = [
    (f"{BELONG},11,21", "new"),
    (f"{BELONG},13,22", "new"),
    (f"{BELONG},12,21", SOURCE_MISSING),
    (f"{CONNECT},14,23", "new"),
    (f"{CONNECT},11,23", ONE_TO_MANY),
    ("bk_switch_run_host,11,21", UNKNOWN_ASSOCIATION),
    (f"{DEFAULT},31,41", "new"),
    (f"{DEFAULT},31,x", invalid("bk_asst_inst_id")),
]
REMOTE_BY_NAME = [
    ({"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-03", "bk_asst_inst_name": "10.0.0.1"}, "new"),
    ({"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-01", "bk_asst_inst_name": "10.0.0.1"}, "old"),
    (
        {"bk_obj_asst_id": BELONG, "bk_inst_name": "sw-09", "bk_asst_inst_name": "10.0.0.1"},
        SOURCE_MISSING,
    ),
    (
        {"bk_obj_asst_id": DEFAULT, "bk_inst_name": "rt-02", "bk_asst_inst_name": "fw-01"},
        ONE_TO_ONE,
    ),
]
REMOTE_CREDENTIALS = ["--app-code", "esb_test", "--app-secret", "xxx", "--username", "xxx"]


async def find(base_url: str, bk_obj_id: str, bk_obj_asst_id: str) -> set[tuple[int, int]]:
    """What the server itself answers, through its own find_instance_association."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post(
            "/api/c/compapi/v2/cc/find_instance_association/",
            json={
                "bk_app_code": "esb_test",
                "bk_app_secret": "xxx",
                "bk_username": "admin",
                "bk_obj_id": bk_obj_id,
                "condition": {"bk_obj_asst_id": bk_obj_asst_id},
            },
        )
    body = response.json()
    assert body["code"] == 0, body
    return {(a["bk_inst_id"], a["bk_asst_inst_id"]) for a in body["data"]}


async def test_import_into_a_running_server(live_server, tmp_path):
    source = tmp_path / "remote.csv"
    source.write_text("\n".join([HEADER] + [line for line, _ in REMOTE_CSV]) + "\n")
    errors = tmp_path / "errors.csv"
    args = ["import", "associations", str(source), "--errors", str(errors), "--url", live_server]

    first = cmdbgraph(*args, *REMOTE_CREDENTIALS)
    assert first.returncode == 1, first.stderr
    assert summary(first) == (4, 0, 4)
    expected = [
        (number, *outcome)
        for number, (_, outcome) in enumerate(REMOTE_CSV, start=2)
        if isinstance(outcome, tuple)
    ]
    assert [(line, code, message) for line, _, _, _, code, message in error_report(errors)] == (
        expected
    )
    assert await find(live_server, "bk_switch", BELONG) == {(11, 21), (13, 22)}
    assert await find(live_server, "bk_switch", CONNECT) == {(14, 23)}
    assert await find(live_server, "bk_router", DEFAULT) == {(31, 41)}

    second = cmdbgraph(*args, *REMOTE_CREDENTIALS)
    assert second.returncode == 1, second.stderr
    assert summary(second) == (0, 4, 4)
    assert await find(live_server, "bk_switch", BELONG) == {(11, 21), (13, 22)}

    # By name: the server resolves the names (search_inst_by_object with $in).
    by_name = tmp_path / "remote.jsonl"
    by_name.write_text(jsonl(REMOTE_BY_NAME))
    named = cmdbgraph(
        "import", "associations", str(by_name), "--by-name", "--errors", str(errors),
        "--url", live_server, *REMOTE_CREDENTIALS,
    )  # fmt: skip
    assert named.returncode == 1, named.stderr
    assert summary(named) == (1, 1, 2)
    assert [(line, code) for line, _, _, _, code, _ in error_report(errors)] == [
        (3, SOURCE_MISSING[0]),
        (4, ONE_TO_ONE[0]),
    ]
    assert await find(live_server, "bk_switch", BELONG) == {(11, 21), (13, 22), (14, 21)}


async def test_import_into_a_server_that_refuses_the_credentials(live_server, tmp_path):
    source = tmp_path / "remote.csv"
    source.write_text(f"{HEADER}\n{BELONG},11,21\n")
    refused = cmdbgraph(
        "import", "associations", str(source), "--url", live_server,
        "--app-code", "esb_test", "--app-secret", "wrong", "--username", "xxx",
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "import stopped" in refused.stderr and "1100004" in refused.stderr
    # ... and what to do about it, from the server's X-Cmdbgraph-Hint.
    assert "check its code and secret" in refused.stderr
    assert "cmdbgraph apps create esb_test" in refused.stderr
    assert await find(live_server, "bk_switch", BELONG) == set()


# ---------------------------------------------------------------------------------------------
# Export, and import(export(x)) == x.


async def populate(db) -> int:
    """Associations of three mappings, among the demo instances and 60 x 100 new ones (more
    than one export page); the same calls on a fresh database give the same instance ids."""
    switches = await new_instances(db, "bk_switch", "exp-sw", 60)
    hosts = await new_instances(db, "host", "exp-host", 100)
    await store(db, BELONG, "bk_switch", "host", [(s, h) for s in switches for h in hosts])
    await store(db, BELONG, "bk_switch", "host", [(11, 21), (13, 21), (14, 22)])
    await store(db, CONNECT, "bk_switch", "host", [(11, 21), (11, 22), (13, 23)])
    await store(db, DEFAULT, "bk_router", "bk_firewall", [(31, 42), (32, 41)])
    return switches[0]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
async def test_import_of_an_export_gives_the_same_associations(
    db, database_url, fresh_database_url, tmp_path, suffix
):
    first_switch = await populate(db)
    original = await stored_rows(db)
    assert len(original) == 6000 + 3 + 3 + 2
    exported = tmp_path / f"export.{suffix}"
    done = cmdbgraph("export", "associations", "-o", str(exported), "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    assert "exported 6008 associations" in done.stderr
    text = exported.read_text(encoding="utf-8")
    if suffix == "csv":
        assert text.splitlines()[0] == HEADER and len(text.splitlines()) == 6009
    else:
        assert len(text.splitlines()) == 6008
        assert set(json.loads(text.splitlines()[0])) == {
            "bk_obj_asst_id",
            "bk_inst_id",
            "bk_asst_inst_id",
        }

    async with open_database(fresh_database_url) as fresh:
        # The same instances, with the same ids; no association yet.
        switches = await new_instances(fresh, "bk_switch", "exp-sw", 60)
        await new_instances(fresh, "host", "exp-host", 100)
        assert switches[0] == first_switch
        assert await stored_rows(fresh) == set()
        imported = cmdbgraph(
            "import", "associations", str(exported), "--database-url", fresh_database_url
        )
        assert imported.returncode == 0, imported.stderr
        assert summary(imported) == (6008, 0, 0)
        assert await stored_rows(fresh) == original

    # Exporting the copy gives the very same file: same rows, in the same order.
    again = tmp_path / f"again.{suffix}"
    done = cmdbgraph(
        "export", "associations", "-o", str(again), "--database-url", fresh_database_url
    )
    assert done.returncode == 0, done.stderr
    assert again.read_text(encoding="utf-8") == text

    # And importing it where it came from adds nothing.
    counts = await row_counts(db)
    back = cmdbgraph("import", "associations", str(again), "--database-url", database_url)
    assert back.returncode == 0, back.stderr
    assert summary(back) == (0, 6008, 0)
    assert await row_counts(db) == counts


async def test_export_of_one_model_association_to_stdout(db, database_url):
    await populate(db)
    done = cmdbgraph(
        "export", "associations", "--bk-obj-asst-id", DEFAULT, "--format", "csv",
        "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [HEADER, f"{DEFAULT},31,42", f"{DEFAULT},32,41"]


# ---------------------------------------------------------------------------------------------
# What the command shows and reports: refused rows counted, an error report that imports again
# once fixed, standard input in either format, the progress display (plain and live), Ctrl-C,
# and a file it cannot use.

FIXABLE = [
    (f"{BELONG},11,21", None, None),  # created
    (f"{BELONG},abc,22", invalid("bk_inst_id"), (11, 22)),  # refused: not a number
    (f"{BELONG},12,22", SOURCE_MISSING, (13, 22)),  # fails in the database: no switch 12
    (f"{BELONG},13", invalid("bk_asst_inst_id"), (13, 21)),  # refused: no target
    (f"{BELONG},²,23", invalid("bk_inst_id"), (14, 23)),  # refused: not an ASCII digit
    (f"{BELONG},13,99999999999999999999", invalid("bk_asst_inst_id"), (13, 23)),  # > 64 bits
]


@pytest.mark.parametrize("report_format", ["csv", "jsonl"])
async def test_the_error_report_once_fixed_imports_again(db, database_url, tmp_path, report_format):
    source = tmp_path / "rows.csv"
    source.write_text("\n".join([HEADER] + [line for line, _, _ in FIXABLE]) + "\n", "utf-8")
    report = tmp_path / f"failed.{report_format}"
    before = await stored_rows(db)

    done = cmdbgraph(
        "import", "associations", str(source), "--errors", str(report),
        "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    # Every row of the file is counted, the refused ones too.
    assert "6 rows: 1 created, 0 already present, 5 failed" in done.stderr
    expected = [
        (number, line.split(",")[1], (line.split(",") + [""])[2], outcome)
        for number, (line, outcome, _) in enumerate(FIXABLE, start=2)
        if outcome is not None
    ]
    records = read_report(report, report_format)
    assert list(records[0]) == [*ID_COLUMNS, "line", "code", "message"]
    assert [
        (
            int(r["line"]),
            str(r["bk_inst_id"]),
            str(r["bk_asst_inst_id"]),
            (int(r["code"]), r["message"]),
        )
        for r in records
    ] == expected
    assert all(r["bk_obj_asst_id"] == BELONG for r in records)

    # Fixed where it stands (the line, code and message columns stay), it imports as it is.
    fixes = {number: fix for number, (_, _, fix) in enumerate(FIXABLE, start=2) if fix}
    for record in records:
        record["bk_inst_id"], record["bk_asst_inst_id"] = fixes[int(record["line"])]
    write_report(report, records, report_format)
    again = cmdbgraph("import", "associations", str(report), "--database-url", database_url)
    assert again.returncode == 0, again.stderr
    assert "5 rows: 5 created, 0 already present, 0 failed" in again.stderr
    assert await stored_rows(db) - before == {
        (BELONG, "belong", "bk_switch", s, "host", d, "n:n") for s, d in [(11, 21), *fixes.values()]
    }


def read_report(path: Path, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_report(path: Path, records: list[dict], fmt: str) -> None:
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
        return
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def cmdbgraph_reading(text: str, *args: str) -> subprocess.CompletedProcess:
    """The command line with ``text`` on its standard input."""
    return subprocess.run(
        [sys.executable, "-m", "cmdbgraph.cli", *args],
        input=text, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def started(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cmdbgraph.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
async def test_standard_input_in_either_format_needs_no_format_option(db, database_url, fmt):
    rows = [(BELONG, 11, 21), (BELONG, 13, 22)]
    if fmt == "csv":
        text = "\ufeff" + HEADER + "\r\n" + "".join(f"{a},{s},{d}\r\n" for a, s, d in rows)
    else:
        records = [dict(zip(ID_COLUMNS, row, strict=True)) for row in rows]
        text = "\n" + "".join(json.dumps(record) + "\n" for record in records)
    done = cmdbgraph_reading(text, "import", "associations", "-", "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    assert summary(done) == (2, 0, 0)


async def racks_and_servers(db, racks: int, servers: int) -> list[str]:
    """A model association of two new models with ``racks * servers`` possible pairs; the lines
    of a CSV file holding every pair."""
    await catalog.create_model(db, SYSTEM, catalog.NewModel("imp_rack", "Rack"))
    await catalog.create_model(db, SYSTEM, catalog.NewModel("imp_server", "Server"))
    await catalog.create_model_association(
        db, SYSTEM, catalog.NewModelAssociation("imp_rack", "imp_server", "belong", "n:n")
    )
    rack_ids = await new_instances(db, "imp_rack", "rack", racks)
    server_ids = await new_instances(db, "imp_server", "srv", servers)
    return [HEADER] + [f"{RACK_SERVER},{r},{s}" for r in rack_ids for s in server_ids]


async def test_plain_progress_when_the_output_is_not_a_terminal(db, database_url, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("\n".join(await racks_and_servers(db, 100, 200)) + "\n", "utf-8")
    done = cmdbgraph("import", "associations", str(source), "--database-url", database_url)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr, "no control codes"
    lines = [line for line in done.stderr.splitlines() if line.startswith("importing:")]
    # A line at every tenth of the file (reached a chunk of 5,000 rows at a time), then the
    # last one at 100 % with the time the import took.
    percents = [int(re.match(r"importing: +(\d+)%", line)[1]) for line in lines]
    assert len(percents) >= 3 and percents == sorted(percents), lines
    assert percents[-1] == 100 and "took" in lines[-1] and "ETA" not in lines[-1], lines
    assert "20000 rows: 20000 created, 0 already present, 0 failed" in lines[-1]
    assert all(
        re.search(r"\d+ rows: \d+ created, \d+ already present, \d+ failed", x) for x in lines
    )
    assert summary(done) == (20000, 0, 0)


async def test_live_progress_on_a_terminal_ends_at_100_percent(db, database_url, tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("\n".join(await racks_and_servers(db, 100, 200)) + "\n", "utf-8")
    output = in_a_terminal(
        [sys.executable, "-m", "cmdbgraph.cli", "import", "associations", str(source),
         "--database-url", database_url],
    )  # fmt: skip
    assert "\x1b[" in output, "animated"
    frames = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", f) for f in re.split(r"[\r\n]", output)]
    bars = [f for f in frames if "rows/s" in f or "ETA" in f]
    assert bars and "100%" in bars[-1] and "took" in bars[-1], bars[-3:]
    assert all(len(f) <= 80 for f in frames), "each line fits an 80-column terminal"
    assert "20000 rows: 20000 created, 0 already present, 0 failed" in output


def in_a_terminal(command: list[str], timeout: float = 120) -> str:
    """Everything ``command`` writes to a pseudo-terminal of 80 columns."""
    import fcntl
    import pty
    import struct
    import termios

    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    environment = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "CI", "TERM")}
    process = subprocess.Popen(
        command,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**environment, "TERM": "xterm-256color"},
        close_fds=True,
    )
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=30) == 0
    return b"".join(chunks).decode("utf-8", "replace")


async def test_ctrl_c_prints_the_summary_and_writes_the_failed_rows_so_far(
    db, database_url, tmp_path
):
    lines = await racks_and_servers(db, 300, 300)
    lines[1:] = [line if i % 100 else line + "x" for i, line in enumerate(lines[1:], start=1)]
    source = tmp_path / "rows.csv"
    source.write_text("\n".join(lines) + "\n", "utf-8")
    report = tmp_path / "failed.csv"
    process = started(
        "import", "associations", str(source), "--errors", str(report),
        "--database-url", database_url,
    )  # fmt: skip
    # Interrupted once it has shown progress (at 10 % of 90,000 rows), well before the end.
    first = process.stderr.readline()
    assert first.startswith("importing:"), first
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130, first + rest
    assert "Traceback" not in rest
    found = re.search(
        r"(\d+) rows: (\d+) created, 0 already present, (\d+) failed \(so far\)", rest
    )
    assert found, rest
    rows, created, failed = (int(n) for n in found.groups())
    last_line = int(re.search(r"interrupted after line (\d+): run the same command again", rest)[1])
    assert rows == last_line - 1 < 90_000 and created + failed == rows
    # What it says is what happened: the associations it counted, no more; and the rows it
    # counted as failed, in the report, each before the line it stopped at.
    stored = await stored_rows(db, RACK_SERVER)
    assert len(stored) == created
    failed_rows = error_report(report)
    assert len(failed_rows) == failed and all(r[0] <= last_line for r in failed_rows)

    again = cmdbgraph("import", "associations", str(source), "--database-url", database_url)
    assert again.returncode == 1, again.stderr
    assert summary(again) == (89_100 - created, created, 900)


UNUSABLE = [
    # (file's bytes, options, what the one line says)
    (b"", (), "the file is empty: its first line names the columns"),
    (b"a,b\n1,2\n", (), "the file has no column bk_obj_asst_id,bk_inst_id,bk_asst_inst_id"),
    (
        f"bk_obj_asst_id,bk_inst_name,bk_asst_inst_name\n{BELONG},sw-01,10.0.0.1\n".encode(),
        (),
        "import it with --by-name",
    ),
    (f"{HEADER}\n{BELONG},11,21\n".encode(), ("--by-name",), "import it without --by-name"),
    (
        f"{HEADER}\n{BELONG},11,21\n{BELONG},13,21\n{BELONG},14,\xff\n".encode("latin-1"),
        (),
        "line 4 is not UTF-8",
    ),
    (f"{HEADER}\n".encode(), ("--format", "xml"), "--format must be csv or jsonl"),
    (f"{HEADER}\n".encode(), ("--progress", "fancy"), "--progress must be"),
]


@pytest.mark.parametrize(("content", "options", "says"), UNUSABLE)
async def test_a_file_or_option_the_import_cannot_use_is_one_line(
    db, database_url, tmp_path, content, options, says
):
    source = tmp_path / "rows.csv"
    source.write_bytes(content)
    report = tmp_path / "failed.csv"
    done = cmdbgraph(
        "import", "associations", str(source), "--errors", str(report), *options,
        "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if "not UTF-8" in says:
        # The rows before the bad line were imported and are summed up; then the one line.
        assert summary(done) == (2, 0, 0)
        assert lines[-1] == (
            "import stopped: line 4 is not UTF-8: save the file as UTF-8 and import it again "
            "(rows already present are skipped)"
        )
    else:
        assert len(lines) == 1 and says in lines[0], lines
        assert not report.exists(), "no report of a file that was not read"


async def test_the_report_must_be_writable_and_not_the_file_being_imported(
    db, database_url, tmp_path
):
    source = tmp_path / "rows.csv"
    content = f"{HEADER}\n{BELONG},11,21\n"
    source.write_text(content, "utf-8")
    done = cmdbgraph(
        "import", "associations", str(source), "--errors", str(tmp_path / "." / "rows.csv"),
        "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: --errors names the file being imported: name another file for the report"
    )
    assert source.read_text("utf-8") == content

    elsewhere = tmp_path / "no-such-directory" / "failed.csv"
    done = cmdbgraph(
        "import", "associations", str(source), "--errors", str(elsewhere),
        "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: cannot write --errors {elsewhere}: no such directory, or not writable"
    )
    assert await stored_rows(db, BELONG) == set(), "nothing was imported"


def test_an_unreachable_database_stops_the_import_in_one_line(tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text(f"{HEADER}\n{BELONG},11,21\n", "utf-8")
    done = cmdbgraph(
        "import", "associations", str(source), "--errors", str(tmp_path / "failed.csv"),
        "--database-url", "postgresql+asyncpg://x@127.0.0.1:1/db",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach the database (")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "failed.csv").exists()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_an_import_transaction_lets_postgresql_plan_its_foreign_key_checks_once(db):
    """Outside imports every statement is planned with its parameters (``force_custom_plan``);
    an import's transaction lets the server reuse plans, so that the foreign-key checks of
    5,000 inserted rows are not planned 15,000 times (a third of the time of an import)."""
    async with db.write() as conn:
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == (
            "force_custom_plan"
        )
    async with db.write(bulk=True) as conn:
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "auto"
    async with db.write() as conn:  # SET LOCAL: the next transaction is as before
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == (
            "force_custom_plan"
        )


@pytest.mark.parametrize("mapping", ["1:1", "1:n"])
async def test_thousands_a_transaction_decide_as_batches_of_200_would(
    db, database_url, fresh_database_url, tmp_path, mapping
):
    """The local import writes 5,000 rows a transaction; every row's fate is still the one
    consecutive batches of 200 give it (each batch seeing what the ones before it wrote),
    also when conflicts span batches: compared with batch_create called 200 rows at a time."""
    import random

    kind = "connect" if mapping == "1:n" else "default"
    pick = random.Random(7)

    async def prepare(database) -> tuple[list[int], list[int]]:
        await catalog.create_model(database, SYSTEM, catalog.NewModel("tx_a", "A"))
        await catalog.create_model(database, SYSTEM, catalog.NewModel("tx_b", "B"))
        await catalog.create_model_association(
            database, SYSTEM, catalog.NewModelAssociation("tx_a", "tx_b", kind, mapping)
        )
        return (
            await new_instances(database, "tx_a", "a", 150),
            await new_instances(database, "tx_b", "b", 150),
        )

    sources, targets = await prepare(db)
    asst = f"tx_a_{kind}_tx_b"
    pairs = [(pick.choice(sources), pick.choice(targets)) for _ in range(1_000)]
    source = tmp_path / "rows.csv"
    source.write_text("\n".join([HEADER] + [f"{asst},{s},{d}" for s, d in pairs]) + "\n")
    report = tmp_path / "failed.csv"
    done = cmdbgraph(
        "import", "associations", str(source), "--errors", str(report),
        "--database-url", database_url,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    imported = {(line, code) for line, _, _, _, code, _ in error_report(report)}

    async with open_database(fresh_database_url) as fresh:
        assert await prepare(fresh) == (sources, targets)
        by_batches = set()
        for start in range(0, len(pairs), 200):
            result = await associations.batch_create(
                fresh,
                SYSTEM,
                associations.BatchCreateRequest(
                    "tx_a", "tx_b", asst,
                    [associations.Detail(*p) for p in pairs[start : start + 200]],
                ),
            )  # fmt: skip
            by_batches |= {
                (start + item.index + 2, item.error.value)
                for item in result.items
                if item.error is not None and item.error is not ErrorCode.ASSOCIATION_ALREADY_EXISTS
            }
        assert await stored_rows(fresh, asst) == await stored_rows(db, asst)
    assert imported == by_batches
    assert len(imported) > 100, "conflicts in plenty, across batches"
