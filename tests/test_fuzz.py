"""Bounded fuzzing of a real ``cmdbgraph serve`` process, on SQLite and on PostgreSQL.

Two sources of requests, for the REST shim (every operation of ``GET /api/openapi.json``) and
for GraphQL (every root field of ``/graphql``):

- schemathesis draws requests from the served description, valid and invalid (derandomized,
  so every run sends the same ones);
- hand-made hostile requests: boundary integers in every integer position (and inside
  ``condition`` objects), hostile strings in every string position, wrong types, malformed
  bodies and documents.

Every answer must be one a client can handle: no HTTP 5xx (not even the documented 503 of an
unavailable database: the database is up here), a JSON body, nothing of the server's insides
in it (a traceback, SQL, module or file names), and no unexpected error dressed as a normal
answer (REST code 1199999, GraphQL ``extensions.code`` INTERNAL_SERVER_ERROR: both are what
the server sends after it caught an exception it did not expect, see
``cmdbgraph/schema/extensions.py``). Afterwards the server is still up and its memory has not
grown without bound.

Failures are collected rather than raised on the spot (no shrinking against a live server, and
one run lists every defect): the test fails at the end with, for each distinct problem, the
request that shows it (method, path, body) and the answer (status, start of the body), then
the errors the server logged.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
import unittest
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from tests.support.calls import demo_headers
from tests.support.servers import LiveServer, live_server

REQUEST_TIMEOUT = 45.0  # seconds; the server itself answers 504 after 30 (request_timeout_seconds)
RSS_GROWTH_LIMIT_KB = 150 * 1024
REST_EXAMPLES = 10  # generated requests per REST operation and generation mode
GRAPHQL_EXAMPLES = 15  # generated requests per GraphQL root field and generation mode
MAX_REPORTED = 40  # distinct problems shown in a failure message

BOUNDARY_INTS = (
    0,
    -1,
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    2**70,
)
HUGE = "x" * 100_000  # 100 KB
HOSTILE_STRINGS = (
    "",
    HUGE,
    "\x00",
    "sw-01\x00",
    "主机 ünïcødé 🚀 \u202egnp.exe",
    "'; DROP TABLE x; --",
    "../../etc/passwd",
    "%00",
    "\ud800",  # a lone surrogate: valid JSON ("\\ud800"), not encodable as UTF-8
)
WRONG_TYPES = (1.5, "11", None, True, [], {})
# Bodies that are not the JSON object an operation takes.
RAW_BODIES = (
    b"",
    b"not json",
    b"null",
    b"[]",
    b"1e400",
    b'"\\u0000"',
    b"\xff\xfe\x00{",
    b'{"bk_obj_id":',
    b"[" * 50_000 + b"]" * 50_000,
    b'{"page": NaN, "id": Infinity}',
    b'{"bk_obj_id": "host", "bk_obj_id": 11, "id": 1, "id": "1"}',
)
# Paths and headers: clients refuse URLs over 64 KB, and HTTP servers limit header sizes (a
# refusal there is the HTTP layer's, not the application's), so long strings are shorter.
LONG_PATH_SEGMENT = "x" * 16_000
LONG_HEADER_VALUE = "x" * 4_000
RAW_PATH_SEGMENTS = ("%00", "host%00", "..%2F..%2Fetc%2Fpasswd", "%2e%2e", "%ZZ", "%C0%AF")

# Signs of the server's insides in an answer. Compared case-sensitively (SQL is upper case);
# a sign counts only if no request sent so far contained it (stored data comes back).
LEAK_MARKERS = (
    "Traceback (most recent call last)",
    "SELECT ",
    "INSERT INTO",
    "DELETE FROM",
    "sqlalchemy",
    "SQLAlchemy",
    "sqlite3.",
    "asyncpg",
    "/site-packages/",
    '.py"',
    '.py\\"',
    'File "/',
    'File \\"/',
)
INTERNAL_REST_CODE = 1199999
CREDENTIAL_FIELDS = ("bk_app_code", "bk_app_secret", "bk_username", "bk_token")
JSON_CT = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------------------------
# Sending and checking


class ServerDied(Exception):
    pass


@dataclass
class Problem:
    """One distinct problem (what is wrong, and the same answer): the first request that
    showed it, and where else it showed."""

    kinds: str
    method: str
    path: str
    body: bytes
    status: int | None
    answer: str
    count: int = 0
    positions: dict[str, int] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)

    def add(self, label: Label) -> None:
        self.count += 1
        position = f"{label.operation}: {label.where}"
        self.positions[position] = self.positions.get(position, 0) + 1
        if label.variant and label.variant not in self.variants and len(self.variants) < 20:
            self.variants.append(label.variant)


def answer_signature(answer: str) -> str:
    """An answer without what changes from one request to the next (ids, numbers)."""
    return re.sub(r"\d+", "N", re.sub(r"\b[0-9a-f]{32}\b", "<id>", answer))[:300]


@dataclass(frozen=True)
class Label:
    """What a request exercises: ``operation`` (an operation id, a GraphQL root field, or a
    schemathesis label), at the position ``where``, with the value ``variant`` there."""

    operation: str
    where: str = "base request"
    variant: str = ""


@dataclass
class Fuzzer:
    server: LiveServer
    problems: dict[tuple, Problem] = field(default_factory=dict)
    sent_markers: set[str] = field(default_factory=set)
    reached: dict[str, int] = field(default_factory=dict)
    statuses: dict[int | str, int] = field(default_factory=dict)
    rss_start: int = 0  # kB, after the warm-up
    rss_end: int = 0  # kB, at the end

    def __post_init__(self) -> None:
        self.base_url = self.server.url
        self.process = self.server.process
        self.log_path = self.server.log_path
        self.client = httpx.Client(base_url=self.base_url, timeout=REQUEST_TIMEOUT)
        self.session = requests.Session()

    def close(self) -> None:
        self.client.close()
        self.session.close()

    # -- hand-made requests

    def send(
        self,
        label: Label,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Sends one request (a JSON ``body``, or ``raw`` bytes) with the demo credentials in
        the header (``headers`` may replace them), checks the answer, and returns its JSON
        (None if it is not JSON)."""
        content = raw if raw is not None else json.dumps(body).encode()
        all_headers = {**demo_headers(), **JSON_CT, **(headers or {})}
        self._note_sent(content + json.dumps(all_headers).encode())
        for attempt in (1, 2):
            try:
                response = self.client.request(method, path, content=content, headers=all_headers)
                break
            except httpx.LocalProtocolError:
                raise  # the client refused to send it: a mistake in this test, not the server's
            except httpx.TimeoutException:
                self._problem(["no answer in time"], label, method, path, content, None, "")
                self._new_connections()
                return None
            except httpx.TransportError as error:
                # Once more on a new connection: an earlier failure may have broken this one.
                self._new_connections()
                if attempt == 2 or self.process.poll() is not None:
                    self._transport_failure(label, method, path, content, error)
                    return None
        if response.status_code >= 500:
            self._new_connections()
        return self.check(
            label,
            method,
            path,
            content,
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
        )

    def _new_connections(self) -> None:
        """Drops the kept-alive connections (a failed request may have broken them)."""
        self.close()
        self.__post_init__()

    # -- schemathesis cases

    def call_case(self, label: Label, case) -> None:
        """Sends a schemathesis case with the requests transport and checks the answer."""
        from schemathesis.core.errors import SerializationError

        self._note_sent(f"{case.body!r} {case.headers!r} {case.query!r}".encode())
        path = case.formatted_path
        sent = json.dumps(case.body, default=repr).encode()
        for attempt in (1, 2):
            try:
                response = case.call(
                    base_url=self.base_url, session=self.session, timeout=REQUEST_TIMEOUT
                )
                break
            except (SerializationError, requests.exceptions.InvalidHeader, UnicodeEncodeError):
                return  # the client cannot send this case: nothing reached the server
            except requests.exceptions.Timeout:
                self._problem(["no answer in time"], label, case.method, path, sent, None, "")
                self._new_connections()
                return
            except requests.exceptions.ConnectionError as error:
                self._new_connections()
                if attempt == 2 or self.process.poll() is not None:
                    self._transport_failure(label, case.method, path, sent, error)
                    return
        if response.status_code >= 500:
            self._new_connections()
        request = response.request
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        self._note_sent(body + repr(dict(request.headers)).encode() + (request.url or "").encode())
        url = urllib.parse.urlsplit(request.url)
        self.check(
            label,
            request.method,
            url.path + (f"?{url.query}" if url.query else ""),
            body,
            response.status_code,
            (response.headers.get("content-type") or [""])[0],
            response.content,
        )

    # -- the checks

    def check(
        self,
        label: Label,
        method: str,
        path: str,
        body: bytes,
        status: int,
        content_type: str,
        content: bytes,
    ) -> Any:
        self.reached[label.operation] = self.reached.get(label.operation, 0) + 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        text = content.decode("utf-8", "replace")
        kinds = []
        if status >= 500:
            kinds.append(f"HTTP {status}")
        try:
            reply = json.loads(content)
        except ValueError:
            kinds.append(f"the body is not JSON (content-type {content_type!r})")
            reply = None
        leaked = [m for m in LEAK_MARKERS if m in text and m not in self.sent_markers]
        if leaked:
            kinds.append(f"the body shows the server's insides ({', '.join(map(repr, leaked))})")
        if isinstance(reply, dict):
            if INTERNAL_REST_CODE in (reply.get("code"), reply.get("bk_error_code")):
                kinds.append(f"REST code {INTERNAL_REST_CODE} (an unexpected error)")
            errors = reply.get("errors")
            if isinstance(errors, list) and any(
                isinstance(error, dict)
                and (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"
                for error in errors
            ):
                kinds.append("GraphQL INTERNAL_SERVER_ERROR (an unexpected error, masked)")
        if kinds:
            self._problem(kinds, label, method, path, body, status, text)
        return reply

    def _note_sent(self, sent: bytes) -> None:
        text = sent.decode("utf-8", "replace")
        for marker in LEAK_MARKERS:
            if marker in text:
                self.sent_markers.add(marker)

    def _transport_failure(self, label, method, path, body, error) -> None:
        self.statuses["no answer"] = self.statuses.get("no answer", 0) + 1
        time.sleep(0.5)
        if self.process.poll() is not None:
            kind = f"the server process died (exit {self.process.returncode})"
            self._problem([kind], label, method, path, body, None, repr(error))
            raise ServerDied
        self._problem(["the connection failed"], label, method, path, body, None, repr(error))

    def _problem(self, kinds, label, method, path, body, status, answer) -> None:
        key = (tuple(kinds), status, answer_signature(answer))
        if key not in self.problems:
            self.problems[key] = Problem("; ".join(kinds), method, path, body, status, answer)
        self.problems[key].add(label)

    # -- the server

    def rss_kb(self) -> int:
        return self.server.rss_kb()

    def report(self, extra: list[str]) -> str:
        lines = [
            f"{len(self.problems)} distinct problem(s) in {sum(self.statuses.values())} requests "
            f"(answers by status: {self.statuses}) to {self.base_url} (server RSS: "
            f"{self.rss_start // 1024} MB after the warm-up, {self.rss_end // 1024} MB at the end):"
        ]
        lines += extra
        for number, item in enumerate(self.problems.values(), start=1):
            if number > MAX_REPORTED:
                lines.append(f"\n... and {len(self.problems) - MAX_REPORTED} more")
                break
            positions = list(item.positions)
            lines.append(
                f"\n[{number}] {item.kinds}: {item.count} request(s), e.g.\n"
                f"    request:   {item.method} {_short_path(item.path)}\n"
                f"    body:      {describe_body(item.body)}\n"
                f"    response:  {item.status} {item.answer[:500]}\n"
                f"    positions: {'; '.join(positions[:12])}"
                + (f" (and {len(positions) - 12} more)" if len(positions) > 12 else "")
            )
            if len(item.variants) > 1:
                lines.append(f"    values:    {', '.join(item.variants)}")
        lines.append(server_errors(self.log_path))
        return "\n".join(lines)


def _short_path(path: str) -> str:
    if len(path) <= 300:
        return path
    return f"{path[:150]}...<{len(path)} characters>...{path[-60:]}"


def _abbreviate(value: Any, depth: int = 0) -> Any:
    """A JSON value with long strings, long lists and deep nesting shortened, to print it."""
    if depth > 8 and isinstance(value, list | dict):
        return "<nested deeper>"
    if isinstance(value, str) and len(value) > 1000:
        if value == value[0] * len(value):
            return f"<{value[0]!r} * {len(value)}>"
        return f"<{len(value)} characters: {value[:60]!r}...>"
    if isinstance(value, list):
        shown = [_abbreviate(item, depth + 1) for item in value[:20]]
        return shown + ([f"<{len(value)} items>"] if len(value) > 20 else [])
    if isinstance(value, dict):
        return {_abbreviate(k): _abbreviate(v, depth + 1) for k, v in value.items()}
    return value


def describe_body(body: bytes) -> str:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        if len(body) > 300:
            return f"{body[:100]!r}...<{len(body)} bytes>...{body[-40:]!r}"
        return repr(body)
    return f"{json.dumps(_abbreviate(value), ensure_ascii=True)} ({len(body)} bytes)"


def server_errors(log_path: Path) -> str:
    """The distinct errors the server logged (message and the last line of each exception)."""
    seen: dict[str, int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Error" in line:
                seen[line[:300]] = seen.get(line[:300], 0) + 1
            continue
        if not isinstance(entry, dict) or entry.get("level") not in ("error", "critical"):
            continue
        exception = (entry.get("exception") or "").strip().splitlines()
        message = " ".join(str(entry.get("message", "")).split())
        message = re.sub(r"\b[0-9a-f]{32}\b", "<id>", message)[:150]
        errors = [line for line in exception if re.match(r"^[\w.]+(Error|Exception)\b", line)]
        last = (errors or exception or [""])[-1]
        summary = f"{message} | {last[:300]}"
        seen[summary] = seen.get(summary, 0) + 1
    if not seen:
        return "\nThe server logged no error."
    return "\nThe server logged:\n" + "\n".join(
        f"    (x{count}) {summary}" for summary, count in list(seen.items())[:15]
    )


# ---------------------------------------------------------------------------------------------
# The server under test


@contextlib.contextmanager
def fuzzing(database_url: str, tmp_path: Path) -> Iterator[Fuzzer]:
    """A real server on ``database_url``; at the end, every problem found, the server's health
    and memory are asserted."""
    log_path = tmp_path / "server.log"
    with live_server(database_url, log_path) as server:
        base_url, process = server.url, server.process
        fuzzer = Fuzzer(server)
        extra: list[str] = []
        try:
            yield fuzzer
        except ServerDied:
            extra.append("The server process died: the run stopped there.")
        except BaseException as error:  # a mistake in this test: still show what it found
            if fuzzer.problems:
                error.add_note(fuzzer.report(["(found before the run broke off)"]))
            raise
        finally:
            fuzzer.close()
        if process.poll() is None:
            rss_end = fuzzer.rss_end = fuzzer.rss_kb()
            grown = rss_end - fuzzer.rss_start
            if grown > RSS_GROWTH_LIMIT_KB:
                extra.append(
                    f"The server's RSS grew by {grown // 1024} MB during the run "
                    f"({fuzzer.rss_start // 1024} MB after warm-up, {rss_end // 1024} MB at "
                    f"the end; limit {RSS_GROWTH_LIMIT_KB // 1024} MB)."
                )
            try:
                health = httpx.get(f"{base_url}/healthz", timeout=REQUEST_TIMEOUT)
                if health.status_code != 200:
                    extra.append(f"/healthz answers {health.status_code}: {health.text[:300]}")
            except httpx.HTTPError as error:
                extra.append(f"/healthz does not answer: {error!r}")
        elif not extra:
            extra.append(f"The server process exited ({process.returncode}).")
        print(
            f"{sum(fuzzer.statuses.values())} requests, answers by status {fuzzer.statuses}, "
            f"server RSS {fuzzer.rss_start // 1024} MB after the warm-up, "
            f"{fuzzer.rss_end // 1024} MB at the end"
        )
        if fuzzer.problems or extra:
            pytest.fail(fuzzer.report(extra), pytrace=False)


def warm_up(fuzzer: Fuzzer, base: list[tuple[Label, str, str, Any]]) -> None:
    """Sends every base request once, then a few big ones (500 KB), and records the RSS."""
    for label, method, path, body in base:
        fuzzer.send(label, method, path, body)
    for label, method, path, body in base[:3]:
        fuzzer.send(label, method, path, {"padding": HUGE * 5, **(body or {})})
    fuzzer.rss_start = fuzzer.rss_kb()


# ---------------------------------------------------------------------------------------------
# Hand-made values


def show(value: Any) -> str:
    """A short description of a value under test."""
    text = json.dumps(_abbreviate(value), ensure_ascii=True)
    return text if len(text) <= 60 else f"{text[:57]}..."


def leaves(value: Any, pointer: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every scalar of a JSON value, with its position."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*pointer, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*pointer, index))
    else:
        yield pointer, value


def replaced(value: Any, pointer: tuple, new: Any) -> Any:
    result = copy.deepcopy(value)
    target = result
    for step in pointer[:-1]:
        target = target[step]
    target[pointer[-1]] = new
    return result


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def mutations(body: dict, *, wrong_types: bool) -> Iterator[tuple[str, Any, Any]]:
    """(position, new value, body): every integer set to each boundary, every string to each
    hostile string, and (if ``wrong_types``) every scalar to values of the wrong type."""
    for pointer, value in list(leaves(body)):
        where = "/".join(map(str, pointer))
        if is_int(value):
            for number in BOUNDARY_INTS:
                yield where, number, replaced(body, pointer, number)
        if isinstance(value, str):
            for text in HOSTILE_STRINGS:
                yield where, text, replaced(body, pointer, text)
        if wrong_types:
            for other in WRONG_TYPES:
                yield f"{where} (wrong type)", other, replaced(body, pointer, other)


# ---------------------------------------------------------------------------------------------
# REST

# A request each operation accepts, by ESB name (without the credentials: they are in the
# X-Bkapi-Authorization header). On native routes, path parameters are taken out of it.
REST_BASES: dict[str, dict] = {
    "add_instance_association": {
        "bk_obj_asst_id": "bk_switch_belong_host",
        "bk_inst_id": 11,
        "bk_asst_inst_id": 21,
    },
    "batch_create_instance_association": {
        "bk_obj_id": "bk_switch",
        "bk_asst_obj_id": "host",
        "bk_obj_asst_id": "bk_switch_belong_host",
        "details": [{"bk_inst_id": 13, "bk_asst_inst_id": 22}],
        "error_policy": "partial",
    },
    "delete_instance_association": {"bk_obj_id": "host", "id": 1001},
    "delete_related_inst_asso": {"bk_obj_id": "host", "id": [1002]},
    "find_instance_association": {
        "bk_obj_id": "bk_switch",
        "condition": {
            "bk_obj_asst_id": "bk_switch_belong_host",
            "bk_asst_id": "belong",
            "bk_asst_obj_id": "host",
        },
    },
    "find_object_association": {
        "condition": {
            "bk_obj_asst_id": "bk_switch_belong_host",
            "bk_obj_id": "bk_switch",
            "bk_asst_obj_id": "host",
            "bk_asst_id": "belong",
        }
    },
    "search_objects": {"bk_obj_id": "host", "bk_obj_name": "host", "bk_classification_id": "x"},
    "search_inst_by_object": {
        "bk_obj_id": "bk_switch",
        "bk_supplier_account": "0",
        "condition": {"bk_inst_name": "sw-01"},
        "fields": ["bk_inst_id", "bk_inst_name"],
        "page": {"start": 0, "limit": 10, "sort": "bk_inst_id"},
    },
    "search_related_inst_asso": {
        "condition": {"bk_inst_id": 11, "bk_obj_id": "bk_switch"},
        "fields": ["id", "bk_inst_id"],
        "page": {"start": 0, "limit": 10},
    },
}
REST_BASES["search_instance_associations"] = {
    "bk_obj_id": "bk_switch",
    "conditions": {
        "condition": "AND",
        "rules": [{"field": "bk_inst_id", "operator": "in", "value": [11, 13]}],
    },
    "fields": ["id", "bk_inst_id"],
    "page": {"start": 0, "limit": 10},
}
REST_BASES["count_instance_associations"] = {
    "bk_obj_id": "bk_switch",
    "conditions": REST_BASES["search_instance_associations"]["conditions"],
}
REST_BASES["search_association_type"] = {
    "condition": {"bk_asst_id": {"$in": ["belong", "connect"]}},
    "page": {"start": 0, "limit": 10},
}
REST_BASES["search_inst"] = {
    "bk_obj_id": "bk_switch",
    "condition": {"bk_switch": [{"field": "bk_inst_name", "operator": "$eq", "value": "sw-01"}]},
    "fields": {"bk_switch": ["bk_inst_id", "bk_inst_name"]},
    "page": {"start": 0, "limit": 10, "sort": "bk_inst_id"},
}
REST_BASES["create_object_association"] = {
    "bk_obj_id": "bk_router",
    "bk_asst_obj_id": "host",
    "bk_asst_id": "connect",
    "bk_obj_asst_id": "bk_router_connect_host",
    "bk_obj_asst_name": "uplink",
    "mapping": "1:n",
    "on_delete": "none",
}
REST_BASES["add_object_association"] = REST_BASES["create_object_association"]
# The demo's own model association (not a preset); deleting it is refused while it is used.
REST_BASES["update_object_association"] = {"id": 5, "bk_obj_asst_name": "rack"}
REST_BASES["delete_object_association"] = {"id": 6}
REST_BASES["create_association_type"] = {
    "bk_asst_id": "backup",
    "bk_asst_name": "备份",
    "src_des": "备份到",
    "dest_des": "备份自",
    "direction": "src_to_dest",
}
REST_BASES["update_association_type"] = {"id": 1, "bk_asst_name": "属于", "direction": "none"}
REST_BASES["delete_association_type"] = {"id": 987654}
REST_BASES["find_instassociation_with_inst"] = {
    "bk_obj_id": "bk_switch",
    "condition": {
        "asst_filter": {
            "condition": "AND",
            "rules": [{"field": "bk_inst_id", "operator": "in", "value": [11, 13]}],
        },
        "src_fields": ["bk_inst_id", "bk_inst_name"],
        "src_detail": True,
        "dst_detail": True,
    },
    "page": {"start": 0, "limit": 10, "sort": "-bk_asst_inst_id"},
}
REST_BASES["search_inst_association_topo"] = {"bk_obj_id": "bk_switch", "bk_inst_id": 11}
REST_BASES["search_inst_asst_object_inst_base_info"] = {
    "condition": {
        "bk_obj_id": "bk_switch",
        "bk_inst_id": 11,
        "association_obj_id": "host",
        "is_target_object": False,
    },
    "page": {"start": 0, "limit": 10, "sort": "bk_asst_inst_id"},
}
# From now: a watch with a cursor would wait for events (its cursors cannot be forged).
REST_BASES["resource_watch"] = {
    "bk_resource": "inst_asst",
    "bk_event_types": ["create", "delete"],
    "bk_fields": ["id", "bk_inst_id"],
    "bk_filter": {"bk_sub_resource": "bk_switch"},
}
CONDITION_SHAPES = (
    lambda n: {"bk_inst_id": n},
    lambda n: {"bk_inst_id": {"$in": [n]}},
    lambda n: {"bk_inst_id": {"$eq": n}},
    lambda n: {"bk_inst_id": [11, n]},
    lambda n: {"bk_inst_name": n},
    lambda n: {"some_attr": n},
    lambda n: {"some_attr": {"$in": [n, "sw-01"]}},
)


@dataclass
class RestOperation:
    operation_id: str
    method: str
    template: str  # e.g. /api/v3/delete/instassociation/{bk_obj_id}/{id}
    name: str  # the ESB name
    family: str  # esb, esb_unversioned, native
    body: dict  # the base body
    path_values: dict[str, Any]  # the base path parameters

    def path(self, **encoded: str) -> str:
        values = {key: urllib.parse.quote(str(v), safe="") for key, v in self.path_values.items()}
        return self.template.format(**{**values, **encoded})

    def label(self, where: str = "base request", variant: Any = "") -> Label:
        shown = variant if isinstance(variant, str) and where.startswith("{") else show(variant)
        return Label(self.operation_id, where, "" if variant == "" else shown)


def rest_operations(document: dict) -> list[RestOperation]:
    operations = []
    for template, item in document["paths"].items():
        for method, operation in item.items():
            operation_id = operation["operationId"]
            name, family = re.fullmatch(
                r"(.+?)_(esb_unversioned|esb|native)(?:_[a-z]+)?", operation_id
            ).groups()
            assert name in REST_BASES, f"no base request for {operation_id} ({template})"
            body = copy.deepcopy(REST_BASES[name])
            path_values = {key: body.pop(key) for key in re.findall(r"{(\w+)}", template)}
            operations.append(
                RestOperation(
                    operation_id, method.upper(), template, name, family, body, path_values
                )
            )
    return operations


def rest_hostile_requests(op: RestOperation) -> Iterator[tuple[Label, str, Any, Any]]:
    """(label, path, JSON body or raw bytes, extra headers) for the hand-made requests of one
    operation. The ESB routes without a version run the versioned ones' code: they get the base
    request only (and schemathesis's)."""
    base_path = op.path()
    if op.family == "esb_unversioned":
        yield op.label(), base_path, op.body, {}
        return
    native = op.family == "native"
    for where, value, body in mutations(op.body, wrong_types=native):
        yield op.label(where, value), base_path, body, {}
    # Path parameters.
    for key, value in op.path_values.items():
        where = f"{{{key}}} in the path"
        if is_int(value):
            for text in (*map(str, BOUNDARY_INTS), "abc", "1.5", "1e3", "0x10", "%201", "%00"):
                yield op.label(where, text), op.path(**{key: text}), {}, {}
        else:
            for text in HOSTILE_STRINGS:
                if text:  # (an empty segment is another path: a 404)
                    text = LONG_PATH_SEGMENT if text == HUGE else text
                    encoded = urllib.parse.quote(text, safe="", errors="surrogatepass")
                    yield op.label(where, encoded[:40]), op.path(**{key: encoded}), {}, {}
            for encoded in RAW_PATH_SEGMENTS:
                yield op.label(where, encoded), op.path(**{key: encoded}), {}, {}
    # Conditions of instance searches: numbers in every form the filter takes.
    if op.name in ("search_inst_by_object", "search_inst"):
        for shape in CONDITION_SHAPES:
            where = f"condition {json.dumps(shape('N')).replace(chr(34) + 'N' + chr(34), 'N')}"
            for number in BOUNDARY_INTS:
                body = {**op.body, "condition": shape(number)}
                yield op.label(where, number), base_path, body, {}
        for text in HOSTILE_STRINGS:
            body = {**op.body, "condition": {text: "sw-01"}}
            yield op.label("condition key", text), base_path, body, {}
        for condition in ({"bk_inst_id": {"$gt": 1}}, {"bk_inst_id": {"$in": []}}, {"$or": []}):
            body = {**op.body, "condition": condition}
            yield op.label("condition operator", condition), base_path, body, {}
    if op.name == "search_related_inst_asso":
        for number in BOUNDARY_INTS:
            condition = {"bk_inst_id": {"$in": [number]}, "bk_obj_id": "bk_switch"}
            body = {**op.body, "condition": condition}
            yield op.label('condition {"bk_inst_id": {"$in": [N]}}', number), base_path, body, {}
    # Many boundary values in one request.
    if op.name == "batch_create_instance_association":
        details = [
            {"bk_inst_id": s, "bk_asst_inst_id": t} for s in BOUNDARY_INTS for t in BOUNDARY_INTS
        ]
        body = {**op.body, "details": details}
        yield op.label("details: every pair of boundaries"), base_path, body, {}
        for text in HOSTILE_STRINGS[1:]:
            body = {**op.body, "idempotency_key": text}
            yield op.label("idempotency_key", text), base_path, body, {}
        for text in ("k" * 201, LONG_HEADER_VALUE, "'; DROP TABLE x; --", "../../etc/passwd"):
            header = {"Idempotency-Key": text}
            yield op.label("Idempotency-Key header", text), base_path, op.body, header
    if op.name == "delete_related_inst_asso":
        body = {**op.body, "id": list(BOUNDARY_INTS)}
        yield op.label("id: every boundary"), base_path, body, {}
    # Credentials: in the body (they win over the header), and in the header.
    if op.name == "search_objects":
        for key in (*CREDENTIAL_FIELDS, "bk_supplier_account"):
            for value in (*HOSTILE_STRINGS, 2**64, None, [], {}):
                body = {**op.body, key: value}
                yield op.label(f"{key} in the body", value), base_path, body, {}
        if native:
            yield from credential_headers(op, base_path)


def credential_headers(op: RestOperation, path: str) -> Iterator[tuple[Label, str, Any, Any]]:
    """Hostile credentials and other headers (values a client can send: ASCII, <= 4 KB)."""
    for key in CREDENTIAL_FIELDS:
        for value in (*HOSTILE_STRINGS, 2**64, None, ["x"]):
            value = LONG_HEADER_VALUE if value == HUGE else value
            credentials = {
                "bk_app_code": "esb_test",
                "bk_app_secret": "xxx",
                "bk_username": "admin",
                key: value,
            }
            header = {"X-Bkapi-Authorization": json.dumps(credentials)}
            yield op.label(f"X-Bkapi-Authorization {key}", value), path, op.body, header
    for text in ("", "not json", "null", "[]", '"x"', "{", '{"bk_app_code": 1e400}'):
        header = {"X-Bkapi-Authorization": text}
        yield op.label("X-Bkapi-Authorization (malformed)", text), path, op.body, header
    for language in ("en", "zh", "xx", "en;q=abc", LONG_HEADER_VALUE):
        for name in ("Blueking-Language", "X-Bkcmdb-Language", "Accept-Language"):
            yield op.label(f"{name} header", language), path, op.body, {name: language}
    for request_id in ("", "x" * 65, LONG_HEADER_VALUE, "a b", "../../etc/passwd"):
        header = {"X-Request-ID": request_id}
        yield op.label("X-Request-ID header", request_id), path, op.body, header


def fuzz_rest_generated(fuzzer: Fuzzer) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    schema = schemathesis.openapi.from_url(
        f"{fuzzer.base_url}/api/openapi.json", headers=demo_headers(), timeout=REQUEST_TIMEOUT
    )
    headers = demo_headers()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            label = Label(operation.label, f"schemathesis, {mode.value}")

            def check(case, keep_body_credentials: bool) -> None:
                if not keep_body_credentials and isinstance(case.body, dict):
                    # Random body credentials win over the header: let half the requests in.
                    for name in CREDENTIAL_FIELDS:
                        case.body.pop(name, None)
                fuzzer.call_case(label, case)  # noqa: B023 (run before the loop moves on)

            run = settings(
                max_examples=REST_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(
                given(
                    case=operation.as_strategy(mode, headers=headers),
                    keep_body_credentials=st.booleans(),
                )(check)
            )
            with contextlib.suppress(unittest.SkipTest, Unsatisfiable):
                run()


def test_rest_fuzz(database_url, tmp_path):
    """Every REST operation: hand-made hostile requests, then schemathesis's."""
    with fuzzing(database_url, tmp_path) as fuzzer:
        document = fuzzer.client.get("/api/openapi.json", headers=demo_headers()).json()
        operations = rest_operations(document)
        warm_up(fuzzer, [(op.label(), op.method, op.path(), op.body) for op in operations])
        for op in operations:
            for label, path, body, headers in rest_hostile_requests(op):
                fuzzer.send(label, op.method, path, body, headers=headers)
            if op.family != "esb_unversioned":
                for raw in RAW_BODIES:
                    fuzzer.send(
                        op.label("malformed body", raw.decode("latin-1")),
                        op.method,
                        op.path(),
                        raw=raw,
                    )
        fuzz_rest_generated(fuzzer)
    # The run reached every operation, by hand and through schemathesis.
    assert set(fuzzer.reached) == {op.operation_id for op in operations} | {
        f"{op.method} {op.template}" for op in operations
    }


# ---------------------------------------------------------------------------------------------
# GraphQL

INSTANCE_FIELDS = "bkInstId bkObjId bkInstName attributes"
ASSOCIATION_FIELDS = "id bkObjAsstId bkInstId bkAsstInstId"
RESULT_FIELDS = """
    __typename
    ... on RequestError { code bkErrorCode message }
    ... on PermissionDenied { code bkErrorCode message permission }
"""
BATCH_FIELDS = (
    RESULT_FIELDS
    + """
    ... on BatchCreateInstAssociationsPayload {
      createdCount failedCount successCreated errorMsg
      results { index ok error { code message } association { id } }
    }
"""
)

# Every position of a BigInt id: a document with $v where the id goes.
GRAPHQL_ID_POSITIONS: dict[str, str] = {
    "instance(bkInstId)": (
        "query Q($v: BigInt!) { instance(bkInstId: $v) { <INSTANCE> "
        "associationsAsSource { id } associationsAsTarget { id } } }"
    ),
    "instAssociations(filter.ids)": (
        "query Q($v: BigInt!) { instAssociations(filter: {ids: [$v]}) "
        "{ totalCount items { <ASSOCIATION> } } }"
    ),
    "instAssociations(filter.bkInstId)": (
        "query Q($v: BigInt!) { instAssociations(filter: {bkInstId: $v}) "
        "{ totalCount items { <ASSOCIATION> } } }"
    ),
    "instAssociations(filter.bkAsstInstId)": (
        "query Q($v: BigInt!) { instAssociations(filter: {bkAsstInstId: $v}) "
        "{ totalCount items { <ASSOCIATION> } } }"
    ),
    "instAssociations(filter.involvingInstId)": (
        "query Q($v: BigInt!) { instAssociations(filter: {involvingInstId: $v}) "
        "{ totalCount items { <ASSOCIATION> source { bkInstId } target { bkInstId } } } }"
    ),
    "auditEntries(filter.resourceId)": (
        "query Q($v: BigInt!) { auditEntries(filter: {resourceId: $v}) "
        "{ totalCount items { id resourceId } } }"
    ),
    "batchCreateInstAssociations(details.bkInstId)": (
        'mutation M($v: BigInt!) { batchCreateInstAssociations(input: {bkObjId: "bk_switch", '
        'bkAsstObjId: "host", bkObjAsstId: "bk_switch_belong_host", '
        "details: [{bkInstId: $v, bkAsstInstId: 23}]}) { <BATCH> } }"
    ),
    "batchCreateInstAssociations(details.bkAsstInstId)": (
        'mutation M($v: BigInt!) { batchCreateInstAssociations(input: {bkObjId: "bk_switch", '
        'bkAsstObjId: "host", bkObjAsstId: "bk_switch_belong_host", '
        "details: [{bkInstId: 14, bkAsstInstId: $v}]}) { <BATCH> } }"
    ),
    "deleteInstAssociations(ids)": (
        "mutation M($v: BigInt!) { deleteInstAssociations(input: {ids: [$v]}) { <RESULT> "
        "... on DeleteInstAssociationsPayload { deletedCount deleted { id } } } }"
    ),
}

# Every Int argument (offsets and page sizes).
GRAPHQL_INT_POSITIONS: dict[str, str] = {
    "instances(offset)": "query Q($v: Int!) { instances(offset: $v) { totalCount items { bkInstId } } }",  # noqa: E501
    "instances(limit)": "query Q($v: Int!) { instances(limit: $v) { totalCount items { bkInstId } } }",  # noqa: E501
    "instAssociations(offset)": "query Q($v: Int!) { instAssociations(offset: $v) { totalCount } }",
    "instAssociations(limit)": "query Q($v: Int!) { instAssociations(limit: $v) { totalCount items { id } } }",  # noqa: E501
    "auditEntries(offset)": "query Q($v: Int!) { auditEntries(offset: $v) { totalCount } }",
    "auditEntries(limit)": "query Q($v: Int!) { auditEntries(limit: $v) { totalCount items { id } } }",  # noqa: E501
    "instance(associationsAsSource.limit)": "query Q($v: Int!) { instance(bkInstId: 11) { associationsAsSource(limit: $v) { id } } }",  # noqa: E501
    "instance(associationsAsTarget.limit)": "query Q($v: Int!) { instance(bkInstId: 21) { associationsAsTarget(limit: $v) { id } } }",  # noqa: E501
}

# Every String argument.
GRAPHQL_STRING_POSITIONS: dict[str, str] = {
    "instances(bkObjId)": "query Q($v: String!) { instances(bkObjId: $v) { totalCount } }",
    "instances(nameContains)": "query Q($v: String!) { instances(nameContains: $v) { totalCount items { bkInstId } } }",  # noqa: E501
    "modelAssociations(bkObjId)": "query Q($v: String!) { modelAssociations(bkObjId: $v) { bkObjAsstId } }",  # noqa: E501
    "modelAssociations(bkAsstObjId)": "query Q($v: String!) { modelAssociations(bkAsstObjId: $v) { bkObjAsstId } }",  # noqa: E501
    "modelAssociations(bkAsstId)": "query Q($v: String!) { modelAssociations(bkAsstId: $v) { bkObjAsstId } }",  # noqa: E501
    "instAssociations(filter.bkObjAsstId)": "query Q($v: String!) { instAssociations(filter: {bkObjAsstId: $v}) { totalCount } }",  # noqa: E501
    "instAssociations(filter.bkObjId, bkAsstObjId, bkAsstId)": "query Q($v: String!) { instAssociations(filter: {bkObjId: $v, bkAsstObjId: $v, bkAsstId: $v}) { totalCount } }",  # noqa: E501
    "auditEntries(filter strings)": "query Q($v: String!) { auditEntries(filter: {resourceType: $v, action: $v, bkUsername: $v, requestId: $v}) { totalCount } }",  # noqa: E501
    "createModel(bkObjId)": 'mutation M($v: String!) { createModel(input: {bkObjId: $v, bkObjName: "fuzz"}) { <RESULT> ... on Model { bkObjId } } }',  # noqa: E501
    "createModel(bkObjName, bkClassificationId, bkObjIcon)": 'mutation M($v: String!) { createModel(input: {bkObjId: "fuzz_model", bkObjName: $v, bkClassificationId: $v, bkObjIcon: $v}) { <RESULT> ... on Model { bkObjId } } }',  # noqa: E501
    "createInstances(bkObjId)": 'mutation M($v: String!) { createInstances(input: {bkObjId: $v, instances: [{bkInstName: "fuzz-a"}]}) { <RESULT> ... on CreateInstancesPayload { instances { bkInstId } } } }',  # noqa: E501
    "createInstances(bkInstName)": 'mutation M($v: String!) { createInstances(input: {bkObjId: "bk_switch", instances: [{bkInstName: $v}]}) { <RESULT> ... on CreateInstancesPayload { instances { bkInstId bkInstName } } } }',  # noqa: E501
    "createModelAssociation(bkAsstId, bkObjAsstId, bkObjAsstName)": 'mutation M($v: String!) { createModelAssociation(input: {bkObjId: "bk_switch", bkAsstObjId: "bk_router", bkAsstId: $v, bkObjAsstId: $v, bkObjAsstName: $v}) { <RESULT> ... on ModelAssociation { bkObjAsstId } } }',  # noqa: E501
    "batchCreateInstAssociations(bkObjId, bkAsstObjId, bkObjAsstId)": "mutation M($v: String!) { batchCreateInstAssociations(input: {bkObjId: $v, bkAsstObjId: $v, bkObjAsstId: $v, details: [{bkInstId: 11, bkAsstInstId: 21}]}) { <BATCH> } }",  # noqa: E501
    "batchCreateInstAssociations(idempotencyKey)": 'mutation M($v: String!) { batchCreateInstAssociations(input: {bkObjId: "bk_switch", bkAsstObjId: "host", bkObjAsstId: "bk_switch_belong_host", dryRun: true, idempotencyKey: $v, details: [{bkInstId: 11, bkAsstInstId: 21}]}) { <BATCH> } }',  # noqa: E501
    "deleteInstAssociations(bkObjId)": "mutation M($v: String!) { deleteInstAssociations(input: {ids: [1], bkObjId: $v}) { <RESULT> } }",  # noqa: E501
}


def graphql_label(position: str, where: str, variant: Any = "") -> Label:
    """``position`` is ``field(argument)``."""
    field_name, _, argument = position.partition("(")
    where = f"{argument.rstrip(')')} {where}".strip()
    return Label(f"graphql {field_name}", where, show(variant) if variant != "" else "")


def graphql_literal(value: Any) -> str:
    """``value`` written as a GraphQL literal (JSON scalars take objects and lists)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {graphql_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(graphql_literal(item) for item in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def inline(document: str, literal: str) -> str:
    """``document`` with its variable ``$v`` replaced by ``literal``, written in the text."""
    return re.sub(r"\(\$v: [^)]*\)", "", document, count=1).replace("$v", literal)


def graphql_request(document: str, variables: dict | None = None) -> dict:
    """The request body for ``document``, with its selection placeholders filled in."""
    for placeholder, fields in (
        ("<BATCH>", BATCH_FIELDS),
        ("<RESULT>", RESULT_FIELDS),
        ("<INSTANCE>", INSTANCE_FIELDS),
        ("<ASSOCIATION>", ASSOCIATION_FIELDS),
    ):
        document = document.replace(placeholder, fields)
    return {"query": document, "variables": variables or {}}


def graphql_hostile_requests() -> Iterator[tuple[Label, dict]]:
    """(label, request body) for the hand-made GraphQL requests."""
    request = graphql_request
    for position, document in GRAPHQL_ID_POSITIONS.items():
        for number in BOUNDARY_INTS:
            # As a variable (a number and a decimal string), and written in the document.
            yield graphql_label(position, "as a variable", number), request(document, {"v": number})
            yield (
                graphql_label(position, "as a variable", str(number)),
                request(document, {"v": str(number)}),
            )
            yield (
                graphql_label(position, "in the document", number),
                request(inline(document, str(number))),
            )
            yield (
                graphql_label(position, "in the document", str(number)),
                request(inline(document, f'"{number}"')),
            )
        for other in ("", " 1", "1.0", "1e3", "0x10", "abc", "\x00", 1.5, True, [11], {"a": 1}):
            yield (
                graphql_label(position, "as a variable (not an integer)", other),
                request(document, {"v": other}),
            )
    for position, document in GRAPHQL_INT_POSITIONS.items():
        for number in BOUNDARY_INTS:
            yield graphql_label(position, "as a variable", number), request(document, {"v": number})
            yield (
                graphql_label(position, "in the document", number),
                request(inline(document, str(number))),
            )
    for position, document in GRAPHQL_STRING_POSITIONS.items():
        for text in HOSTILE_STRINGS:
            yield graphql_label(position, "", text), request(document, {"v": text})
    # nameContains: 900 KB (within the 1 MB body limit), and a NUL.
    document = GRAPHQL_STRING_POSITIONS["instances(nameContains)"]
    yield (
        graphql_label("instances(nameContains)", "", "x" * 900_000),
        request(document, {"v": "x" * 900_000}),
    )
    yield graphql_label("instances(nameContains)", "", "sw\x00"), request(document, {"v": "sw\x00"})
    literal = inline(document, json.dumps("y" * 900_000))
    yield (
        graphql_label("instances(nameContains)", "in the document", "y" * 900_000),
        request(literal),
    )
    # attributes (JSON) with huge integers, as a variable and written in the document.
    create = (
        'mutation M($v: JSON) { createInstances(input: {bkObjId: "bk_switch", '
        'instances: [{bkInstName: "<NAME>", attributes: $v}]}) { <RESULT> '
        "... on CreateInstancesPayload { instances { bkInstId attributes } } } }"
    )
    for index, number in enumerate(BOUNDARY_INTS):
        for shape, attributes in (
            ('{"n": N}', {"n": number}),
            ('{"a": [{"b": N}]}', {"a": [{"b": number}], "s": str(number)}),
        ):
            name = f"fuzz-attr-{index}-{len(shape)}"
            position = "createInstances(attributes)"
            yield (
                graphql_label(position, f"{shape} as a variable", number),
                request(create.replace("<NAME>", name), {"v": attributes}),
            )
            literal = inline(create.replace("<NAME>", f"{name}-l"), graphql_literal(attributes))
            yield graphql_label(position, f"{shape} in the document", number), request(literal)
    for attributes in (
        {"n": 1.5e308, "m": -1e-320},
        {"\x00": "\x00"},
        {"s": HUGE},
        {"deep": json.loads("[" * 500 + "]" * 500)},
        [1, 2],
        "text",
        2**70,
    ):
        yield (
            graphql_label("createInstances(attributes)", "odd JSON", attributes),
            request(create.replace("<NAME>", "fuzz-odd"), {"v": attributes}),
        )
    # Many boundary values in one request.
    details = [
        {"bkInstId": s, "bkAsstInstId": t} for s in BOUNDARY_INTS[:6] for t in BOUNDARY_INTS[:6]
    ]
    yield (
        graphql_label("batchCreateInstAssociations(details)", "pairs of boundaries"),
        request(
            "mutation M($d: [InstAssociationDetailInput!]!) { batchCreateInstAssociations(input: "
            '{bkObjId: "bk_switch", bkAsstObjId: "host", bkObjAsstId: "bk_switch_belong_host", '
            "details: $d}) { <BATCH> } }",
            {"d": details},
        ),
    )
    yield (
        graphql_label("deleteInstAssociations(ids)", "every boundary"),
        request(
            "mutation M($v: [BigInt!]!) { deleteInstAssociations(input: {ids: $v}) { <RESULT> } }",
            {"v": list(BOUNDARY_INTS)},
        ),
    )
    # Requests that are not what the endpoint takes.
    models = "{ models { bkObjId } }"
    for what, body in (
        ("query=null", {"query": None}),
        ("query=number", {"query": 2**70}),
        ("no query", {}),
        ("variables=list", {"query": models, "variables": [1]}),
        ("variables=string", {"query": models, "variables": "x"}),
        ("operationName=NUL", {"query": models, "operationName": "\x00"}),
        ("syntax error", {"query": "{ models { "}),
        ("NUL in the document", {"query": "{ models \x00 { bkObjId } }"}),
        ("unknown field", {"query": "{ nothing }"}),
        ("nested 5,000 deep", {"query": "{ models " + "{ bkObjId " * 5_000 + "}" * 5_001}),
        ("100,000 braces", {"query": "{" * 100_000}),
        (
            "20,000 aliases",
            {"query": "{ " + " ".join(f"a{i}: models {{ bkObjId }}" for i in range(20_000)) + " }"},
        ),
        (
            "variables nested 500 deep",
            {
                "query": "query Q($v: [BigInt!]) "
                "{ instAssociations(filter: {ids: $v}) { totalCount } }",
                "variables": {"v": json.loads("[" * 500 + "]" * 500)},
            },
        ),
        ("subscription", {"query": "subscription { models { bkObjId } }"}),
        (
            "two operations, none chosen",
            {"query": "query A { models { bkObjId } } query B { models { bkObjId } }"},
        ),
        (
            "deep introspection",
            {
                "query": "{ __schema { types { fields { type { ofType { ofType { ofType "
                "{ fields { name } } } } } } } } }"
            },
        ),
    ):
        yield Label("graphql document", what), body


def fuzz_graphql_generated(fuzzer: Fuzzer) -> None:
    import graphql
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable
    from schemathesis.graphql import nodes
    from schemathesis.specs.graphql import scalars

    def value_node(value: Any) -> graphql.ValueNode:
        if isinstance(value, dict):
            return graphql.ObjectValueNode(
                fields=tuple(
                    graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=value_node(v))
                    for k, v in value.items()
                )
            )
        if isinstance(value, list):
            return graphql.ListValueNode(values=tuple(value_node(item) for item in value))
        if value is None:
            return graphql.NullValueNode()
        if isinstance(value, bool):
            return graphql.BooleanValueNode(value=value)
        if isinstance(value, int):
            return nodes.Int(value)
        if isinstance(value, float):
            return nodes.Float(value)
        return nodes.String(value)

    # Ids (BigInt) and attributes (JSON) from the boundaries too.
    boundaries = st.sampled_from(BOUNDARY_INTS)
    names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | boundaries
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(names, children, max_size=3)
        ),
        max_leaves=6,
    )
    registered = dict(scalars.CUSTOM_SCALARS)
    schemathesis.graphql.scalar(
        "BigInt",
        st.one_of(
            boundaries.map(nodes.Int),
            boundaries.map(str).map(nodes.String),
            st.integers().map(nodes.Int),
        ),
    )
    schemathesis.graphql.scalar("JSON", json_values.map(value_node))
    try:
        schema = schemathesis.graphql.from_url(
            f"{fuzzer.base_url}/graphql", headers=demo_headers(), timeout=REQUEST_TIMEOUT
        )
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (
                schemathesis.GenerationMode.POSITIVE,
                schemathesis.GenerationMode.NEGATIVE,
            ):
                label = Label(operation.label, f"schemathesis, {mode.value}")

                def check(case) -> None:
                    fuzzer.call_case(label, case)  # noqa: B023 (run before the loop moves on)

                run = settings(
                    max_examples=GRAPHQL_EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )(given(case=operation.as_strategy(mode, headers=demo_headers()))(check))
                with contextlib.suppress(unittest.SkipTest, Unsatisfiable):
                    run()
    finally:
        scalars.CUSTOM_SCALARS.clear()
        scalars.CUSTOM_SCALARS.update(registered)


INTROSPECTION = "query { __schema { queryType { name } mutationType { name } types { name } } }"
GRAPHQL_ROOT_FIELDS = 23  # as schema.graphql has them


def test_graphql_fuzz(database_url, tmp_path):
    """Every GraphQL root field: hand-made hostile requests, then schemathesis's."""
    with fuzzing(database_url, tmp_path) as fuzzer:
        base = Label("graphql warm-up")
        warm_up(
            fuzzer,
            [
                (base, "POST", "/graphql", graphql_request("{ models { bkObjId } }")),
                (base, "POST", "/graphql", graphql_request("{ instances { totalCount } }")),
                (base, "POST", "/graphql", graphql_request(INTROSPECTION)),
            ],
        )
        for label, body in graphql_hostile_requests():
            fuzzer.send(label, "POST", "/graphql", body)
        for header in (
            "",
            "not json",
            "[]",
            '{"bk_app_code": "\\u0000"}',
            '{"bk_app_code": 1e400}',
        ):
            fuzzer.send(
                Label("graphql models", "X-Bkapi-Authorization header", show(header)),
                "POST",
                "/graphql",
                graphql_request("{ models { bkObjId } }"),
                headers={"X-Bkapi-Authorization": header},
            )
        for raw in RAW_BODIES:
            label = Label("graphql document", "malformed body", show(raw.decode("latin-1")))
            fuzzer.send(label, "POST", "/graphql", raw=raw)
        # Introspection, through the checks first: schemathesis needs it.
        introspection = Label("graphql introspection")
        reply = fuzzer.send(introspection, "POST", "/graphql", graphql_request(INTROSPECTION))
        introspected = isinstance(reply, dict) and (reply.get("data") or {}).get("__schema")
        if introspected:
            fuzz_graphql_generated(fuzzer)
    # schemathesis reached every root field.
    generated = {name for name in fuzzer.reached if name.startswith(("Query.", "Mutation."))}
    assert len(generated) == GRAPHQL_ROOT_FIELDS, sorted(generated)
