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
    "raw": "raw sqlite3, IN-queries + executemany (limit)",
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


# Goals from the project's performance notes, as multiples of the raw limit.
GOALS = {"rest": 2.0, "graphql": 3.0}
# What recording events may add to a batch in the service: events on / events off.
EVENTS_GOAL = 1.15


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


def report(
    args: argparse.Namespace,
    results: list[Series],
    loads: list[float],
    wall_s: float,
    event_loop: str,
) -> None:
    raw = next(r for r in results if r.method == "raw")
    ratios = {
        backend: backend_ratios(results, backend)
        for backend in dict.fromkeys(r.backend for r in results)
    }
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
                            "ratio_to_raw": round(r.median_ms / raw.median_ms, 2)
                            if r.batch_size
                            else None,
                            "samples_ms": [round(s, 3) for s in r.samples_ms],
                        }
                        for r in results
                    ],
                    "goals_ratio_to_raw": GOALS,
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
    raw_cpu = raw.cpu_mean_ms
    for r in results:
        per_s = f"{r.per_second:,.0f}" if r.batch_size else "-"
        ratio = f"{r.median_ms / raw.median_ms:.2f}" if r.batch_size else "-"
        goal = GOALS.get(r.method) if r.backend == "sqlite" else None
        verdict = (
            ""
            if goal is None
            else f"  goal <= {goal:g}x: "
            + ("met" if r.median_ms / raw.median_ms <= goal else "NOT met")
        )
        cpu = r.cpu_mean_ms
        cpu_text = "-" if cpu is None else f"{cpu:.1f}"
        cpu_ratio = (
            "-" if cpu is None or not raw_cpu or not r.batch_size else f"{cpu / raw_cpu:.2f}"
        )
        print(
            f"{r.backend:<10} {LABELS[r.method]:<48} {r.median_ms:>9.2f} {r.p90_ms:>8.2f} "
            f"{per_s:>9} {ratio:>6} {cpu_text:>7} {cpu_ratio:>6}{verdict}"
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
    if args.postgresql:
        print("x raw is always relative to the SQLite raw limit.")
    # The run itself adds about 1 to 1.5 to the load average: only the first reading tells
    # whether other work was competing for the cores.
    busy = loads[0] > 0.5 * (os.cpu_count() or 1)
    print(
        f"load average {' -> '.join(f'{load:.2f}' for load in loads)}"
        + (" (other work was running: absolute numbers are inflated)" if busy else "")
        + f"; wall time {wall_s:.0f} s"
    )
