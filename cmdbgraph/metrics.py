"""Prometheus metrics (the counters; ``http/operations.py`` serves them). Labels are bounded:
operation names come from our routes and schema, never from client-chosen strings."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "cmdbgraph_requests_total",
    "Requests served, by interface, operation and outcome (ok or an upstream error code).",
    ["interface", "operation", "outcome"],
)
LATENCY = Histogram(
    "cmdbgraph_request_duration_seconds",
    "Request latency, by interface and operation.",
    ["interface", "operation"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ASSOCIATION_ITEMS = Counter(
    "cmdbgraph_association_items_total",
    "Batch-create items, by result (created or failed) and upstream error code (0 if created).",
    ["result", "code"],
)

SUBSCRIPTIONS = Gauge(
    "cmdbgraph_subscriptions_open",
    "GraphQL subscriptions following the change stream in this process.",
)
SUBSCRIBERS_DROPPED = Counter(
    "cmdbgraph_subscribers_dropped_total",
    "Websocket connections closed because the client did not read what it was sent.",
)


# The labelled children already used: ``labels()`` checks and locks on every call, these are
# found with one dict lookup. Bounded as the labels are.
_REQUEST_CHILDREN: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_ITEM_CHILDREN: dict[tuple[str, str], Any] = {}


def observe_request(interface: str, operation: str, outcome: str, seconds: float) -> None:
    key = (interface, operation, outcome)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        children = _REQUEST_CHILDREN[key] = (
            REQUESTS.labels(interface, operation, outcome),
            LATENCY.labels(interface, operation),
        )
    children[0].inc()
    children[1].observe(seconds)


def _items(result: str, code: str):
    child = _ITEM_CHILDREN.get((result, code))
    if child is None:
        child = _ITEM_CHILDREN[result, code] = ASSOCIATION_ITEMS.labels(result, code)
    return child


def record_batch(result) -> None:
    """Count the items of a ``BatchCreateResult`` that was just decided (not a replay)."""
    if result.replayed:
        return
    created = failed = 0
    by_code: dict[int, int] = {}
    for item in result.items:
        if item.association is not None:
            created += 1
        elif item.error is not None:
            failed += 1
            by_code[item.error.value] = by_code.get(item.error.value, 0) + 1
    if created:
        _items("created", "0").inc(created)
    for code, count in by_code.items():
        _items("failed", str(code)).inc(count)
