"""The runner: every method on its own copy of the prepared database, interleaved batch by
batch, on SQLite (and PostgreSQL with ``--postgresql``); then the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TypeVar

import httpx
import orjson

import benchmarks
from benchmarks.methods import (
    HTTP_SERIES,
    MINIMAL_MUTATION,
    RawPostgres,
    RawSqlite,
    bench_server,
    created_by_reply,
    events_off,
    graphql_call,
    per_item_batch,
    requests_of,
    rest_call,
)
from benchmarks.preparation import (
    OBJ_ASST_ID,
    PostgresStore,
    SqliteStore,
    Workload,
    fill,
    prepare,
    verify,
)
from benchmarks.report import METHODS, Series, report
from cmdbgraph.db.engine import Database
from cmdbgraph.services import associations, limits
from cmdbgraph.settings import Settings
from tests.support.calls import BATCH_MUTATION

T = TypeVar("T")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed_ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of another process, all its threads (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), counted after the ")" that ends field 2.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(parent: int) -> float:
    """CPU time of ``parent`` and its child processes (PostgreSQL's postmaster and backends)."""
    total = process_cpu_seconds(parent) or 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's main process, as the parent of a backend (Linux /proc)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
    finally:
        await conn.close()
    try:
        stat = Path(f"/proc/{backend}/stat").read_text()  # noqa: ASYNC240 - /proc, no disk
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


# ---------------------------------------------------------------------------------------------
# Measuring: every method on its own database copy, interleaved batch by batch

# One batch of one method: the batch number -> how many associations it created.
BatchRunner = Callable[[int], Awaitable[int]]


def clone_databases(store, methods: list[str]) -> dict[str, str]:
    """A fresh copy of the prepared database per method: every method writes tables of the
    same size (a batch on SQLite costs more as its indexes grow, until each row dirties a page
    of each index: see README)."""
    return {name: store.clone(name) for name in methods}


async def measure_backend(
    store, urls: dict[str, str], workload: Workload, directory: Path, methods: list[str]
) -> list[Series]:
    """Run every method's batches round-robin (the order rotates each round, and runs
    backwards every other round), so that a slower or busier stretch of the run hits every
    method alike and the ratios stay fair."""
    backend = store.backend
    size = workload.batch_size
    runners: dict[str, BatchRunner] = {}
    floor = Series("http-floor", backend, 0)
    http_series = [m for m in HTTP_SERIES if m in methods]
    # One server process per HTTP method, each on its method's copy.
    server_pids: dict[str, int] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    async with contextlib.AsyncExitStack() as stack:
        if "raw" in urls:
            raw_batches = workload.series_batches(0)
            if backend == "sqlite":
                raw = RawSqlite(store.path_of("raw"))
                stack.callback(raw.close)

                async def run_raw(k: int) -> int:
                    return len(raw.batch(raw_batches[k], f"bench-raw-{k}"))

            else:
                raw_pg = await RawPostgres.connect(urls["raw"])
                stack.push_async_callback(raw_pg.close)

                async def run_raw(k: int) -> int:
                    return len(await raw_pg.batch(raw_batches[k], f"bench-raw-{k}"))

            runners["raw"] = run_raw

        requests = requests_of(workload.series_batches(0))
        if "service" in urls:
            service_db = Database(Settings(database_url=urls["service"]))
            stack.push_async_callback(service_db.dispose)

            async def run_service(k: int) -> int:
                caller = workload.caller(f"bench-service-{k}")
                result = await associations.batch_create(service_db, caller, requests[k])
                return result.created_count

            runners["service"] = run_service

        if "service-no-events" in urls:
            # The same batches on a copy of their own, with event recording replaced by a no-op
            # for these calls only: the difference with "service" is what events cost.
            quiet_db = Database(Settings(database_url=urls["service-no-events"]))
            stack.push_async_callback(quiet_db.dispose)

            async def run_service_no_events(k: int) -> int:
                caller = workload.caller(f"bench-service-no-events-{k}")
                with events_off():
                    result = await associations.batch_create(quiet_db, caller, requests[k])
                return result.created_count

            runners["service-no-events"] = run_service_no_events

        for method in http_series:
            base_url, server_pids[method] = stack.enter_context(
                bench_server(
                    urls[method],
                    directory / f"server-{backend}-{method}.log",
                    auth_on=workload.auth,
                )
            )
            clients[method] = await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, timeout=60)
            )
        builders = {
            "rest": rest_call,
            "graphql": graphql_call(BATCH_MUTATION),
            "graphql-min": graphql_call(MINIMAL_MUTATION),
        }
        for method in http_series:
            # Bodies are encoded before the clock starts; it stops once the reply is decoded.
            calls = [builders[method](details) for details in workload.series_batches(0)]

            async def run_http(k: int, method: str = method, calls=calls) -> int:
                path, body, headers = calls[k]
                response = await clients[method].post(path, content=body, headers=headers)
                if response.status_code != 200:
                    raise SystemExit(f"{method}: HTTP {response.status_code} {response.text[:500]}")
                return created_by_reply(method, orjson.loads(response.content))

            runners[method] = run_http

        if "per-item" in urls:
            per_item_db = Database(Settings(database_url=urls["per-item"]))
            stack.push_async_callback(per_item_db.dispose)

            async def run_per_item(k: int) -> int:
                caller = workload.caller(f"bench-per-item-{k}")
                success, errors = await per_item_batch(per_item_db, caller, requests[k])
                if errors:
                    raise SystemExit(f"per-item: batch {k} failed items {errors}")
                return len(success)

            runners["per-item"] = run_per_item

        if http_series:
            # The floor on the first HTTP method's server.
            server_pid, client = server_pids[http_series[0]], clients[http_series[0]]
            for n in range(workload.warmup + 100):
                server_cpu = process_cpu_seconds(server_pid)
                cpu = time.process_time()
                start = time.perf_counter()
                (await client.get("/healthz")).raise_for_status()
                elapsed = timed_ms(start)
                cpu = time.process_time() - cpu
                after = process_cpu_seconds(server_pid)
                if n >= workload.warmup:
                    floor.samples_ms.append(elapsed)
                    if server_cpu is not None and after is not None:
                        floor.cpu_ms.append((cpu + after - server_cpu) * 1000)

        database_pid = await postmaster_pid(store.base_url) if backend == "postgresql" else None
        series = await interleaved(backend, runners, workload, server_pids, database_pid)
    # Everything written, and only that: rows, one matching audit entry each, and one event
    # each where events were recorded (per-item and, by design, events off write none).
    per_series = workload.per_series * size
    for name, url in urls.items():
        recorded = per_series if name in ("raw", "service", *HTTP_SERIES) else 0
        await verify(url, per_series, expected_events=recorded)
    ordered = [series[name] for name in METHODS if name in series]
    return ordered + ([floor] if http_series else [])


async def interleaved(
    backend: str,
    runners: dict[str, BatchRunner],
    workload: Workload,
    server_pids: dict[str, int] | None = None,
    database_pid: int | None = None,
) -> dict[str, Series]:
    """Round k runs batch k of every runner, in an order that rotates each round and runs
    backwards every other round. CPU time per batch: this process's, plus the server
    process's of each HTTP method (``server_pids``), plus PostgreSQL's processes'
    (``database_pid``, the postmaster, and its children) on PostgreSQL."""
    size = workload.batch_size
    series = {name: Series(name, backend, size) for name in runners}
    names = list(runners)
    gc.collect()
    for k in range(workload.per_series):
        shift = k % len(names)
        order = names[shift:] + names[:shift]
        if k % 2:
            # Backwards every other round: each method runs as often just before another
            # as just after it (the events on / off pair, say).
            order.reverse()
        for name in order:
            server_pid = (server_pids or {}).get(name)
            server_cpu = process_cpu_seconds(server_pid) if server_pid else 0.0
            database_cpu = children_cpu_seconds(database_pid) if database_pid else 0.0
            cpu = time.process_time()
            start = time.perf_counter()
            created = await runners[name](k)
            elapsed = timed_ms(start)
            cpu = time.process_time() - cpu
            if database_pid:
                cpu += children_cpu_seconds(database_pid) - database_cpu
            if server_pid and server_cpu is not None:
                after = process_cpu_seconds(server_pid)
                server_cpu = None if after is None else after - server_cpu
            if created != size:
                raise SystemExit(f"{name}: batch {k} created {created} of {size}")
            if k >= workload.warmup:
                series[name].samples_ms.append(elapsed)
                if server_cpu is not None:
                    series[name].cpu_ms.append((cpu + server_cpu) * 1000)
        if k == workload.warmup - 1:
            log(f"[{backend}] warmed up, measuring {workload.rounds} rounds ...")
    return series


def clone_stored(store, counts: list[int]) -> dict[int, str]:
    """A fresh copy of the prepared database per number of associations to store."""
    return {count: store.clone(f"stored-{count}") for count in counts}


async def measure_stored(store, workload: Workload, urls: dict[int, str]) -> list[Series]:
    """The service's batches on copies of the prepared database holding more associations
    each (``urls``: by their number), interleaved: whether a batch's cost depends on the
    stored rows."""
    runners: dict[str, BatchRunner] = {}
    requests = requests_of(workload.series_batches(0))
    async with contextlib.AsyncExitStack() as stack:
        for count, url in urls.items():
            name = f"stored-{count}"
            started = time.perf_counter()
            await fill(url, count)
            log(
                f"[{store.backend}] stored {count:,} associations "
                f"in {time.perf_counter() - started:.1f} s"
            )
            db = Database(Settings(database_url=url))
            stack.push_async_callback(db.dispose)

            async def run(k: int, db: Database = db, name: str = name) -> int:
                caller = workload.caller(f"bench-{name}-{k}")
                return (await associations.batch_create(db, caller, requests[k])).created_count

            runners[name] = run
        database_pid = (
            await postmaster_pid(store.base_url) if store.backend == "postgresql" else None
        )
        series = await interleaved(store.backend, runners, workload, database_pid=database_pid)
    return list(series.values())


# ---------------------------------------------------------------------------------------------
# Driver


def loop_factory() -> tuple[Callable | None, str]:
    # uvicorn runs on uvloop when it is installed: the in-process methods do the same.
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def run_async(coroutine: Coroutine[object, object, T]) -> T:
    factory, _ = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=benchmarks.__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=30, help="measured batches per method")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured batches first")
    parser.add_argument("--batch-size", type=int, default=200, help="items per batch (max 200)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="also measure service, HTTP and per-item on a throwaway PostgreSQL "
        "(tests/support/pgserver)",
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="authenticate and check permissions (server CMDBGRAPH_AUTH=true, callers with "
        "enforce_permissions); default off, as with CMDBGRAPH_AUTH=false",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--stored",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="also measure the service on copies holding N more stored associations each "
        "(e.g. --stored 1000 1000000): a batch should cost the same at any size",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="the methods to measure, comma-separated (default: all). raw is always measured "
        "on SQLite: every row is compared with it. E.g. --methods service,service-no-events "
        "for what events cost, in a fraction of the time",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be >= 1 and --warmup >= 0")
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown or not chosen:
        parser.error(f"--methods: choose among {', '.join(METHODS)} (not {', '.join(unknown)})")
    args.methods = [m for m in METHODS if m in chosen or m == "raw"]
    if any(n < 1 or n > 10_000_000 for n in args.stored):
        parser.error("--stored: between 1 and 10,000,000 associations")
    if not 1 <= args.batch_size <= limits.MAX_BATCH_SIZE:
        parser.error(f"--batch-size must be between 1 and {limits.MAX_BATCH_SIZE}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    directory = Path(tempfile.mkdtemp(prefix="cmdbgraph-bench-"))
    # Every method writes the same series of fresh pairs, on its own copy.
    total_batches = args.warmup + args.rounds
    results: list[Series] = []
    flat: list[Series] = []
    try:
        store = SqliteStore(directory)
        log(
            f"preparing {store.base_path}: {2 * total_batches * args.batch_size} instances, "
            f"1:1 model association {OBJ_ASST_ID} ..."
        )
        t0 = time.perf_counter()
        batches = run_async(prepare(store.base_url, args.batch_size, total_batches))
        log(f"prepared in {time.perf_counter() - t0:.1f} s")
        workload = Workload(args.batch_size, args.warmup, args.rounds, args.auth, batches)
        # As the server does after start-up: what exists now never needs scanning again.
        gc.collect()
        gc.freeze()
        loads = [os.getloadavg()[0]]
        log(f"[sqlite] measuring {', '.join(args.methods)}, interleaved ...")
        urls = clone_databases(store, args.methods)
        results += run_async(measure_backend(store, urls, workload, directory, args.methods))
        if args.stored:
            flat += run_async(measure_stored(store, workload, clone_stored(store, args.stored)))
        loads.append(os.getloadavg()[0])
        if args.postgresql:
            from tests.support.pgserver import postgres_server

            log("[postgresql] starting a throwaway server ...")
            with postgres_server() as server:
                pg = PostgresStore(server)
                t0 = time.perf_counter()
                pg_batches = run_async(prepare(pg.base_url, args.batch_size, total_batches))
                log(f"[postgresql] prepared in {time.perf_counter() - t0:.1f} s")
                pg_workload = Workload(
                    args.batch_size, args.warmup, args.rounds, args.auth, pg_batches
                )
                pg_methods = list(args.methods)
                log(f"[postgresql] measuring {', '.join(pg_methods)}, interleaved ...")
                pg_urls = clone_databases(pg, pg_methods)
                results += run_async(
                    measure_backend(pg, pg_urls, pg_workload, directory, pg_methods)
                )
                if args.stored:
                    flat += run_async(
                        measure_stored(pg, pg_workload, clone_stored(pg, args.stored))
                    )
                loads.append(os.getloadavg()[0])
    finally:
        if args.keep:
            log(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    report(args, results, loads, time.perf_counter() - started, loop_factory()[1], flat)
    return 0
