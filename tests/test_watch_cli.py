"""`cmdbgraph watch associations`: one JSON line per event as it commits (written here by
another process), resumable by cursor, and one line for every mistake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cmdbgraph.services import events
from tests.support.siblings import BELONG, store


def watcher(database_url: str, *args: str) -> subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CMDBGRAPH_")}
    environment["CMDBGRAPH_DATABASE_URL"] = database_url
    return subprocess.Popen(
        [sys.executable, "-m", "cmdbgraph.cli", "watch", "associations", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen, timeout: float = 30) -> tuple[int, list[dict], str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, [json.loads(line) for line in out.splitlines()], err


async def test_it_prints_each_event_as_it_commits_and_resumes_by_cursor(db, database_url):
    started = watcher(database_url, "--count", "2")
    # Once it says where it starts (from now), it sees what commits next.
    assert started.stderr.readline().startswith("watching from --from-cursor ")
    ids = await store(db, BELONG, (11, 21), (13, 22))
    code, lines, err = finished(started)
    assert code == 0, err
    assert [(line["event_type"], line["detail"]["id"]) for line in lines] == [
        ("create", ids[0]),
        ("create", ids[1]),
    ]
    assert list(lines[0]) == ["cursor", "event_type", "detail"]
    assert list(lines[0]["detail"]) == list(events.DETAIL_KEYS)
    # After a restart, from the first line's cursor: the second event, and nothing twice.
    code, resumed, err = finished(
        watcher(database_url, "--from-cursor", lines[0]["cursor"], "--count", "1")
    )
    assert (code, [line["detail"]["id"] for line in resumed]) == (0, [ids[1]]), err
    # From a time, and for one model only.
    since = str(int(time.time()) - 60)
    code, by_model, err = finished(
        watcher(database_url, "--since", since, "--model", "host", "--count", "2")
    )
    assert (code, [line["detail"]["id"] for line in by_model]) == (0, ids), err


async def test_ctrl_c_says_where_to_go_on(db, database_url):
    ids = await store(db, BELONG, (11, 21))
    started = watcher(database_url, "--since", str(int(time.time()) - 60))
    assert started.stderr.readline().startswith("watching from")
    line = json.loads(started.stdout.readline())
    assert line["detail"]["id"] == ids[0]
    started.send_signal(signal.SIGINT)
    code, lines, err = finished(started)
    assert code == 130 and lines == []
    stopped = events.decode(err.rsplit("--from-cursor ", 1)[1].split()[0])
    # Where the last line printed left off.
    assert stopped.id == events.decode(line["cursor"]).id
    assert "Traceback" not in err


def test_mistakes_are_one_line(database_url, tmp_path: Path):
    stale = events.encode(events.Position(1, datetime.now(UTC) - timedelta(days=8)))
    for args, code, words in [
        (("--from-cursor", "abc", "--since", "0"), 2, "not both"),
        (("--from-cursor", "abc"), 1, "is not a cursor of this service"),
        (("--from-cursor", stale), 1, "older than the events kept"),
        (("--since", "yesterday"), 2, "is no time"),
        (("--since", "2000-01-01T00:00:00Z"), 1, "older than the events kept"),
    ]:
        code_, lines, err = finished(watcher(database_url, *args))
        assert code_ == code, (args, err)
        assert lines == [] and words in err, (args, err)
        assert "Traceback" not in err
