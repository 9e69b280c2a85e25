"""What every HTTP request pays for besides its call: the body's decoding, the request log and
the metrics. These tests count the work done per request; nothing here is timed."""

from __future__ import annotations

import logging
import random
import re

import pytest

from cmdbgraph import metrics
from cmdbgraph.http import identity, jsonbody, middleware
from cmdbgraph.http.middleware import RequestMiddleware

# --- the long digit runs that send a body to the exact decoder --------------------------------

REGEX = re.compile(rb"\d{19}")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"1" * 18,
        b"1" * 19,
        b'{"id": 123456789012345678}',
        b'{"id": 1234567890123456789}',
        b'{"id": -9223372036854775809}',
        b'{"f": 1.000000000000000001}',
        b"12345678901234567890"[:-1] + b"x",
        "١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩".encode(),  # Arabic-Indic digits: not ASCII, not a run
        b"\xff" * 40 + b"9" * 19 + b"\x00",
    ],
)
def test_long_digit_runs_are_what_the_regex_finds(data):
    assert jsonbody.has_long_digit_run(data) == bool(REGEX.search(data))


def test_long_digit_runs_on_random_bytes():
    rng = random.Random(7)
    alphabet = b"0123456789 ,.-e\x00\xff"
    for _ in range(3_000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        assert jsonbody.has_long_digit_run(data) == bool(REGEX.search(data)), data


def test_a_long_integer_is_still_decoded_exactly():
    assert jsonbody.decode(b'{"id": 123456789012345678901234}') == {"id": 123456789012345678901234}
    assert jsonbody.decode(b'{"id": 12345}') == {"id": 12345}


# --- the request log and the metrics ---------------------------------------------------------


async def _ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _request(app) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/c/compapi/v2/cc/batch_create_instance_association/",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
        "client": ("127.0.0.1", 40000),
    }

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        pass

    await app(scope, receive, send)


@pytest.fixture
def counted_log_fields(monkeypatch) -> list:
    """The calls of the one per-request helper the log line alone needs."""
    calls = []
    original = identity.client_address

    def counting(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(middleware.identity, "client_address", counting)
    return calls


def _app() -> RequestMiddleware:
    return RequestMiddleware(
        _ok,
        max_body_bytes=1024,
        timeout_seconds=5,
        trusted_proxies=identity.TrustedProxies([]),
    )


async def test_no_log_line_is_built_when_info_is_off(counted_log_fields, caplog):
    caplog.set_level(logging.WARNING, logger="cmdbgraph.access")
    await _request(_app())
    assert counted_log_fields == []
    assert not [r for r in caplog.records if r.name == "cmdbgraph.access"]


async def test_the_log_line_is_written_when_info_is_on(counted_log_fields, caplog):
    caplog.set_level(logging.INFO, logger="cmdbgraph.access")
    await _request(_app())
    (record,) = [r for r in caplog.records if r.name == "cmdbgraph.access"]
    assert len(counted_log_fields) == 1
    assert record.status == 200
    assert record.client == "127.0.0.1"
    assert record.interface == "rest"


async def test_metrics_look_their_labels_up_once(monkeypatch):
    looked_up = []
    original = metrics.REQUESTS.labels

    def counting(*args, **kwargs):
        looked_up.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(metrics.REQUESTS, "labels", counting)
    labels = ("rest", "test_metrics_look_their_labels_up_once", "ok")
    for _ in range(3):
        metrics.observe_request(*labels, 0.001)
    assert looked_up == [labels]
    assert original(*labels)._value.get() == 3
    latency = metrics.LATENCY.labels(*labels[:2])
    assert latency._sum.get() == pytest.approx(0.003)
