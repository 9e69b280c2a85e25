"""Prometheus metrics (the counters; ``http/operations.py`` serves them). Labels are bounded:
operation names come from our routes and schema, never from client-chosen strings."""

from __future__ import annotations

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


def observe_request(interface: str, operation: str, outcome: str, seconds: float) -> None:
    REQUESTS.labels(interface, operation, outcome).inc()
    LATENCY.labels(interface, operation).observe(seconds)


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
        ASSOCIATION_ITEMS.labels("created", "0").inc(created)
    for code, count in by_code.items():
        ASSOCIATION_ITEMS.labels("failed", str(code)).inc(count)
