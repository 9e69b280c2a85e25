"""The results and their report: a table (or JSON) of the median, p90, CPU time and ratios to
the raw limit of every method."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import statistics
from dataclasses import dataclass, field

LABELS = {
    "raw": "raw driver, same statements (limit)",
    "service": "service in-process (associations.batch_create)",
    "service-no-events": "service in-process, event recording off",
    "rest": "REST shim over HTTP",
    "graphql": "GraphQL mutation over HTTP (full selection)",
    "graphql-min": "GraphQL mutation over HTTP (counts + maps)",
    "per-item": "per-item, upstream's algorithm (7 stmts/item)",
    "http-floor": "HTTP round trip floor (GET /healthz)",
}
# The methods, in the order of the table (the HTTP floor comes with the HTTP methods).
METHODS = tuple(name for name in LABELS if name != "http-floor")


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Series:
    method: str
    backend: str
    batch_size: int
    samples_ms: list[float] = field(default_factory=list)
    # CPU time per batch (this process, plus the server process for the HTTP rows).
    cpu_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p90_ms(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]

    @property
    def per_second(self) -> float:
        return self.batch_size / (self.median_ms / 1000) if self.batch_size else 0.0

    @property
    def cpu_mean_ms(self) -> float | None:
        # A mean, not a median: the server's CPU time is read in clock ticks (10 ms), and only
        # the mean of many such readings is accurate.
        return statistics.fmean(self.cpu_ms) if self.cpu_ms else None


# The raw limit's label per backend.
RAW_LABELS = {
    "sqlite": "raw sqlite3, IN-queries + executemany (limit)",
    "postgresql": "raw asyncpg, the service's statements (limit)",
}
# Goals, as multiples of the same backend's raw limit (the project's performance notes and
# the performance issue).
GOALS = {
    "sqlite": {"service": 1.3, "rest": 2.0, "graphql": 3.0},
    "postgresql": {"service": 1.3},
}
# What recording events may add to a batch in the service: events on / events off.
EVENTS_GOAL = 1.15
# Upstream's per-item algorithm must stay at least this many times slower than the service.
PER_ITEM_GOAL = 30.0
# A PostgreSQL batch in-process no slower than a SQLite batch in-process.
PG_TO_SQLITE_GOAL = 1.0
# A batch with the most stored associations against one with the fewest (--stored).
FLAT_GOAL = 1.2


@dataclass
class Goal:
    backend: str
    text: str
    value: float
    limit: float
    at_least: bool = False  # the value must reach the limit (else stay under it)

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value <= self.limit


def goals_of(results: list[Series], flat: list[Series] | None = None) -> list[Goal]:
    """Every goal the run has the rows for, with its measured value."""

    def find(method: str, backend: str) -> Series | None:
        return next((r for r in results if r.method == method and r.backend == backend), None)

    goals = []
    for backend in dict.fromkeys(r.backend for r in results):
        raw = find("raw", backend)
        for method, limit in GOALS.get(backend, {}).items():
            row = find(method, backend)
            if raw and row:
                goals.append(
                    Goal(
                        backend,
                        f"{LABELS[method]} <= {limit:g}x raw",
                        row.median_ms / raw.median_ms,
                        limit,
                    )
                )
        service, per_item = find("service", backend), find("per-item", backend)
        if service and per_item:
            goals.append(
                Goal(
                    backend,
                    f"per-item (upstream) >= {PER_ITEM_GOAL:g}x the service",
                    per_item.median_ms / service.median_ms,
                    PER_ITEM_GOAL,
                    at_least=True,
                )
            )
    sqlite_service, pg_service = find("service", "sqlite"), find("service", "postgresql")
    if sqlite_service and pg_service:
        goals.append(
            Goal(
                "postgresql",
                "service on PostgreSQL / service on SQLite <= 1x",
                pg_service.median_ms / sqlite_service.median_ms,
                PG_TO_SQLITE_GOAL,
            )
        )
    for backend in dict.fromkeys(r.backend for r in flat or ()):
        rows = sorted((r for r in flat or () if r.backend == backend), key=stored_of)
        if len(rows) >= 2:
            fewest, most = rows[0], rows[-1]
            goals.append(
                Goal(
                    backend,
                    f"service with {stored_of(most):,} stored / with {stored_of(fewest):,} "
                    f"stored <= {FLAT_GOAL:g}x",
                    most.median_ms / fewest.median_ms,
                    FLAT_GOAL,
                )
            )
    return goals


def stored_of(series: Series) -> int:
    """The number of stored associations of a ``--stored`` series (method ``stored-N``)."""
    return int(series.method.rsplit("-", 1)[1])


def backend_ratios(results: list[Series], backend: str) -> dict[str, float]:
    """The ratios between the methods measured on ``backend`` (those it has the rows for)."""

    def find(method: str) -> Series | None:
        return next((r for r in results if r.method == method and r.backend == backend), None)

    ratios = {}
    rest, graphql, graphql_min = find("rest"), find("graphql"), find("graphql-min")
    service, quiet = find("service"), find("service-no-events")
    if rest and graphql:
        ratios["graphql_to_rest"] = graphql.median_ms / rest.median_ms
    if rest and graphql_min:
        ratios["graphql_min_to_rest"] = graphql_min.median_ms / rest.median_ms
    if rest and service:
        ratios["rest_to_service"] = rest.median_ms / service.median_ms
    if service and quiet:
        ratios["events_on_to_off"] = service.median_ms / quiet.median_ms
        # Both ran in every round, one after the other: the median of the rounds' own ratios
        # is less moved by a busy stretch than the ratio of the medians.
        ratios["events_on_to_off_paired"] = statistics.median(
            on / off for on, off in zip(service.samples_ms, quiet.samples_ms, strict=True)
        )
        if service.cpu_mean_ms and quiet.cpu_mean_ms:
            ratios["events_on_to_off_cpu"] = service.cpu_mean_ms / quiet.cpu_mean_ms
    return ratios


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def label(series: Series) -> str:
    if series.method == "raw":
        return RAW_LABELS[series.backend]
    if series.method.startswith("stored-"):
        return f"service, {stored_of(series):,} associations stored"
    return LABELS[series.method]


def report(
    args: argparse.Namespace,
    results: list[Series],
    loads: list[float],
    wall_s: float,
    event_loop: str,
    flat: list[Series] | None = None,
) -> None:
    flat = flat or []
    raws = {r.backend: r for r in results if r.method == "raw"}

    def ratio(r: Series) -> float | None:
        raw = raws.get(r.backend)
        return r.median_ms / raw.median_ms if raw and r.batch_size else None

    def cpu_ratio(r: Series) -> float | None:
        raw = raws.get(r.backend)
        if raw is None or not raw.cpu_mean_ms or r.cpu_mean_ms is None or not r.batch_size:
            return None
        return r.cpu_mean_ms / raw.cpu_mean_ms

    ratios = {
        backend: backend_ratios(results, backend)
        for backend in dict.fromkeys(r.backend for r in results)
    }
    goals = goals_of(results, flat)
    environment = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "event_loop": event_loop,
        "per_item_stack": "SQLAlchemy async (Database.write), one transaction per batch",
        # 1-minute load average before and after each backend's measurements: other work on
        # the machine inflates every number, and the HTTP rows (two processes) most.
        "load_average": [round(load, 2) for load in loads],
    }
    if args.json:
        print(
            json.dumps(
                {
                    "config": {
                        "rounds": args.rounds,
                        "warmup": args.warmup,
                        "batch_size": args.batch_size,
                        "mapping": "1:1",
                        "postgresql": args.postgresql,
                        "auth": args.auth,
                        "methods": args.methods,
                        "stored": args.stored,
                    },
                    "environment": environment,
                    "results": [
                        {
                            "method": r.method,
                            "backend": r.backend,
                            "median_ms": round(r.median_ms, 3),
                            "p90_ms": round(r.p90_ms, 3),
                            "cpu_mean_ms": None
                            if r.cpu_mean_ms is None
                            else round(r.cpu_mean_ms, 3),
                            "associations_per_s": round(r.per_second) if r.batch_size else None,
                            "ratio_to_raw": rounded(ratio(r)),
                            "cpu_ratio_to_raw": rounded(cpu_ratio(r)),
                            "samples_ms": [round(s, 3) for s in r.samples_ms],
                        }
                        for r in [*results, *flat]
                    ],
                    "goals": [
                        {
                            "backend": g.backend,
                            "goal": g.text,
                            "value": round(g.value, 2),
                            "limit": g.limit,
                            "met": g.met,
                        }
                        for g in goals
                    ],
                    "goal_events_on_to_off": EVENTS_GOAL,
                    "ratios": {
                        b: {k: round(v, 2) for k, v in d.items()} for b, d in ratios.items()
                    },
                    "wall_seconds": round(wall_s, 1),
                },
                indent=2,
            )
        )
        return
    print(
        f"batch_create_instance_association: {args.rounds} measured batches of {args.batch_size} "
        f"fresh pairs per method (after {args.warmup} warm-up), 1:1 model association, "
        f"auth {'on' if args.auth else 'off'}"
    )
    print(
        f"Python {environment['python']}, SQLite {environment['sqlite']} (WAL, synchronous=NORMAL)"
        f", {environment['cpus']} CPUs, {environment['event_loop']}; HTTP: uvicorn + httpx on "
        "127.0.0.1"
    )
    print()
    header = (
        f"{'backend':<10} {'method':<48} {'median ms':>9} {'p90 ms':>8} {'assoc/s':>9} "
        f"{'x raw':>6} {'CPU ms':>7} {'x raw':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in [*results, *flat]:
        per_s = f"{r.per_second:,.0f}" if r.batch_size else "-"
        times = ratio(r)
        cpu, cpus = r.cpu_mean_ms, cpu_ratio(r)
        print(
            f"{r.backend:<10} {label(r):<48} {r.median_ms:>9.2f} {r.p90_ms:>8.2f} "
            f"{per_s:>9} {'-' if times is None else f'{times:.2f}':>6} "
            f"{'-' if cpu is None else f'{cpu:.1f}':>7} {'-' if cpus is None else f'{cpus:.2f}':>6}"
        )
    print()
    for backend, values in ratios.items():
        parts = []
        if "graphql_to_rest" in values:
            parts.append(f"GraphQL/REST {values['graphql_to_rest']:.2f}x")
            if "graphql_min_to_rest" in values:
                parts[-1] += f" (counts+maps selection {values['graphql_min_to_rest']:.2f}x)"
        if "rest_to_service" in values:
            parts.append(f"REST/service in-process {values['rest_to_service']:.2f}x")
        if "events_on_to_off" in values:
            on_off = values["events_on_to_off"]
            paired, cpu = values["events_on_to_off_paired"], values.get("events_on_to_off_cpu")
            parts.append(
                f"events on / events off {on_off:.2f}x (per round {paired:.2f}x"
                + ("" if cpu is None else f", CPU {cpu:.2f}x")
                + f") goal <= {EVENTS_GOAL:g}x: "
                + ("met" if on_off <= EVENTS_GOAL else "NOT met")
            )
        if parts:
            print(f"{backend}: " + ", ".join(parts))
    if goals:
        print()
        print("goals (x raw: of the same backend's raw limit):")
        for g in goals:
            print(
                f"  {g.backend:<10} {g.text:<70} {g.value:>6.2f}  {'met' if g.met else 'NOT met'}"
            )
    # The run itself adds about 1 to 1.5 to the load average: only the first reading tells
    # whether other work was competing for the cores.
    busy = loads[0] > 0.5 * (os.cpu_count() or 1)
    print(
        f"load average {' -> '.join(f'{load:.2f}' for load in loads)}"
        + (" (other work was running: absolute numbers are inflated)" if busy else "")
        + f"; wall time {wall_s:.0f} s"
    )
