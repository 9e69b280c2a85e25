"""``python -m benchmarks.fanout``: the change stream fanned out to many GraphQL subscribers.

One run prepares a database (as ``python -m benchmarks`` does: a 1:1 model association and
enough fresh instances), starts one real ``cmdbgraph serve`` process on it (``CMDBGRAPH_AUTH``
false), and opens ``--subscribers`` websockets to it (graphql-transport-ws:
``connection_init``, ``connection_ack``, then one ``instAssociationEvents`` subscription each)
from a process of their own. Once every subscriber has received an event (warm-up batches,
not counted), a writer sends ``--rate`` small batches a second for ``--seconds`` seconds
(``batch_create_instance_association`` over REST to the same server, or in-process on the
same database with ``--writer in-process``), each of ``--batch-size`` fresh pairs, on a fixed
schedule (a batch does not wait for the one before; at most ``--in-flight`` at once).

Per event and subscriber it records the delivery delay: the time the subscriber read the
event minus the time the writer saw its batch commit (the reply read, or ``batch_create``
returned), both on the machine's monotonic clock (the two processes share it). It checks that
every event written reached every subscriber exactly once, in commit order (the cursors' ids
ascend), and prints: events written and delivered, the delays' p50, p99 and max, the writes'
own latency and the rate achieved, the server's CPU time, and its resident memory (VmRSS)
before the subscribers connected, once they had, and after the run. Run from the repository
root:

    .venv/bin/python -m benchmarks.fanout [--subscribers 100] [--rate 50] [--seconds 10]
        [--batch-size 1] [--writer rest|in-process] [--no-compression] [--postgresql] [--json]
        [--keep]

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import orjson

from benchmarks.methods import bench_server, created_by_reply, requests_of, rest_call
from benchmarks.preparation import PostgresStore, SqliteStore, Workload, prepare
from benchmarks.runner import log, process_cpu_seconds, run_async
from cmdbgraph.db.engine import Database
from cmdbgraph.services import associations, events
from cmdbgraph.settings import Settings

SUBSCRIPTION = "subscription { instAssociationEvents { cursor eventType association { id } } }"
PROTOCOL = "graphql-transport-ws"
# Warm-up batches at most (one every WARMUP_INTERVAL s) before every subscriber has an event.
WARMUP_BATCHES = 50
WARMUP_INTERVAL = 0.2
# How long the server idles after the subscribers closed, before its memory is read again.
CLOSED_SECONDS = 3.0


def rss_kb(pid: int) -> int:
    """A process's resident memory (VmRSS, kB), from /proc."""
    return _status_kb(pid, "VmRSS:")


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/{pid}/status")


def percentile(ordered: list[float], fraction: float) -> float:
    """The value that ``fraction`` of ``ordered`` (sorted) do not exceed (nearest rank)."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# ---------------------------------------------------------------------------------------------
# The subscribers: a process of their own, so that reading thousands of messages a second does
# not delay the writer's clock


def subscribers_main(url: str, count: int, compression: str | None, pipe: Connection) -> None:
    """The subscriber process: ``count`` websockets to ``url``; talks to the runner on ``pipe``.

    Sends ("connected", n) once every subscription is sent, then ("live",) once each has an
    event; on ("expect", measured ids, seconds) waits up to that long for every subscriber to
    have them all and sends ("received", records, failures, CPU seconds): per subscriber,
    (cursor, association id, receive time) of every event it read, warm-up included, and what
    went wrong (a message outside the protocol, a connection closed); on ("close",) closes the
    websockets and returns."""
    try:
        import uvloop

        factory: Callable | None = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_subscribers(url, count, compression, pipe))


async def _subscribers(url: str, count: int, compression: str | None, pipe: Connection) -> None:
    import websockets

    received: list[list[tuple[str, int, float]]] = [[] for _ in range(count)]
    seen: list[set[int]] = [set() for _ in range(count)]
    failures: list[str] = []
    first_event = asyncio.Event()
    waiting_for_first = {n for n in range(count)}

    async def connect(n: int, gate: asyncio.Semaphore):
        async with gate:
            # As a browser connects (permessage-deflate offered unless told not to), never
            # through a proxy.
            ws = await websockets.connect(
                url,
                subprotocols=[PROTOCOL],
                max_queue=None,
                proxy=None,
                open_timeout=60,
                compression=compression,
            )
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            ack = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if ack.get("type") != "connection_ack":
                raise SystemExit(f"subscriber {n}: {ack}")
            await ws.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
            )
            return ws

    async def read(n: int, ws) -> None:
        mine, ids = received[n], seen[n]
        clock = time.monotonic
        try:
            async for text in ws:
                now = clock()
                message = orjson.loads(text)
                kind = message.get("type")
                if kind == "next":
                    event = message["payload"]["data"]["instAssociationEvents"]
                    association_id = int(event["association"]["id"])
                    mine.append((event["cursor"], association_id, now))
                    ids.add(association_id)
                    if n in waiting_for_first:
                        waiting_for_first.discard(n)
                        if not waiting_for_first:
                            first_event.set()
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                else:
                    failures.append(f"subscriber {n}: {str(message)[:300]}")
        except websockets.ConnectionClosed as closed:
            if closed.rcvd is None or closed.rcvd.code != 1000:
                failures.append(f"subscriber {n}: connection closed {closed}")

    gate = asyncio.Semaphore(20)
    sockets = await asyncio.gather(*(connect(n, gate) for n in range(count)))
    readers = [asyncio.create_task(read(n, ws)) for n, ws in enumerate(sockets)]
    pipe.send(("connected", count))
    await first_event.wait()
    pipe.send(("live",))
    command = await asyncio.to_thread(pipe.recv)
    assert command[0] == "expect", command
    _, measured, seconds = command
    deadline = time.monotonic() + seconds
    # Done once every subscriber has every measured event (or the time is up).
    while time.monotonic() < deadline and not failures:
        if all(measured <= ids for ids in seen):
            break
        await asyncio.sleep(0.1)
    pipe.send(("received", received, failures, time.process_time()))
    command = await asyncio.to_thread(pipe.recv)
    for ws in sockets:
        await ws.close()
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


# ---------------------------------------------------------------------------------------------
# The writer


Writer = Callable[[list[tuple[int, int]], int], Awaitable[list[int]]]


def rest_writer(client: httpx.AsyncClient) -> Writer:
    async def write(details: list[tuple[int, int]], k: int) -> list[int]:
        path, body, headers = rest_call(details)
        response = await client.post(path, content=body, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"batch {k}: HTTP {response.status_code} {response.text[:300]}")
        reply = orjson.loads(response.content)
        if created_by_reply("rest", reply) != len(details):
            raise SystemExit(f"batch {k}: {str(reply)[:300]}")
        return [int(i) for i in reply["data"]["success_created"].values()]

    return write


def service_writer(db: Database, workload: Workload) -> Writer:
    async def write(details: list[tuple[int, int]], k: int) -> list[int]:
        [request] = requests_of([details])
        result = await associations.batch_create(db, workload.caller(f"fanout-{k}"), request)
        if result.created_count != len(details):
            raise SystemExit(f"batch {k}: created {result.created_count} of {len(details)}")
        return [item.association.id for item in result.items if item.association is not None]

    return write


async def drive(
    write: Writer,
    batches: list[list[tuple[int, int]]],
    rate: float,
    in_flight: int,
) -> tuple[dict[int, float], list[float], float]:
    """Send ``batches`` at ``rate`` a second on a fixed schedule (at most ``in_flight`` at
    once): (association id -> when the writer saw it committed, each batch's latency in
    seconds, the most a batch was sent after its scheduled time, in seconds)."""
    committed: dict[int, float] = {}
    latencies: list[float] = []
    lag = 0.0
    gate = asyncio.Semaphore(in_flight)

    async def one(k: int, scheduled: float) -> None:
        nonlocal lag
        async with gate:
            sent = time.monotonic()
            lag = max(lag, sent - scheduled)
            ids = await write(batches[k], k)
            done = time.monotonic()
        latencies.append(done - sent)
        for association_id in ids:
            committed[association_id] = done

    start = time.monotonic() + 0.05
    tasks = []
    for k in range(len(batches)):
        scheduled = start + k / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k, scheduled)))
    await asyncio.gather(*tasks)
    return committed, latencies, lag


# ---------------------------------------------------------------------------------------------
# The run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--subscribers", type=int, default=100, help="websockets (1-1000)")
    parser.add_argument("--rate", type=float, default=50, help="batches a second (at most 500)")
    parser.add_argument("--seconds", type=float, default=10, help="how long to write (<= 120)")
    parser.add_argument("--batch-size", type=int, default=1, help="associations a batch")
    parser.add_argument(
        "--writer",
        choices=("rest", "in-process"),
        default="rest",
        help="REST calls to the server (its commits wake its subscribers at once), or "
        "batch_create in this process (another process's commits: the server learns of "
        "them by reading again every 0.25 s on SQLite, by LISTEN on PostgreSQL)",
    )
    parser.add_argument("--in-flight", type=int, default=8, help="batches sent at once, at most")
    parser.add_argument(
        "--no-compression",
        dest="compression",
        action="store_const",
        const=None,
        default="deflate",
        help="subscribers do not offer permessage-deflate (browsers and gql do)",
    )
    parser.add_argument(
        "--drain", type=float, default=60, help="seconds to wait for the last deliveries"
    )
    parser.add_argument("--postgresql", action="store_true", help="on a throwaway PostgreSQL")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if not 1 <= args.subscribers <= 1000:
        parser.error("--subscribers must be between 1 and 1000")
    if not 0 < args.rate <= 500 or not 0 < args.seconds <= 120:
        parser.error("--rate must be in (0, 500] and --seconds in (0, 120]")
    if not 1 <= args.batch_size <= 200 or args.in_flight < 1 or not 0 < args.drain <= 600:
        parser.error("--batch-size 1-200, --in-flight >= 1, --drain in (0, 600]")
    return args


async def measure(args: argparse.Namespace, url: str, workload: Workload, directory: Path) -> dict:
    """One server, the subscribers, the writes; what they saw."""
    batches = workload.batches
    warmup, measured_batches = batches[:WARMUP_BATCHES], batches[WARMUP_BATCHES:]
    context = multiprocessing.get_context("spawn")
    async with contextlib.AsyncExitStack() as stack:
        base_url, pid = stack.enter_context(
            bench_server(url, directory / "server.log", auth_on=False)
        )
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=60))
        if args.writer == "rest":
            write = rest_writer(client)
        else:
            db = Database(Settings(database_url=url))
            stack.push_async_callback(db.dispose)
            write = service_writer(db, workload)
        rss_idle = rss_kb(pid)
        ours, theirs = context.Pipe()
        ws_url = base_url.replace("http://", "ws://") + "/graphql"
        child = context.Process(
            target=subscribers_main,
            args=(ws_url, args.subscribers, args.compression, theirs),
            daemon=True,
        )
        child.start()
        theirs.close()  # the child's end is the child's: its exit then ends the pipe here
        closing = False

        def stop_child() -> None:
            # After ("close",) the child closes its websockets and ends; otherwise (an error
            # here) it is stopped at once.
            child.join(15 if closing else 0)
            if child.is_alive():
                child.terminate()
                child.join(5)

        stack.callback(stop_child)

        async def message(seconds: float) -> tuple:
            if not await asyncio.to_thread(ours.poll, seconds):
                raise SystemExit(f"the subscriber process did not answer within {seconds:g} s")
            try:
                return ours.recv()
            except EOFError:
                raise SystemExit("the subscriber process ended (its error is above)") from None

        log(f"connecting {args.subscribers} subscribers ...")
        connected = await message(120)
        assert connected == ("connected", args.subscribers), connected
        rss_connected = rss_kb(pid)
        log("warming up: batches until every subscriber has an event ...")
        for k, details in enumerate(warmup):
            await write(details, -1 - k)
            if await asyncio.to_thread(ours.poll, WARMUP_INTERVAL):
                break
        else:
            raise SystemExit(f"some subscriber had no event after {WARMUP_BATCHES} batches")
        assert ours.recv() == ("live",)
        log(
            f"writing {len(measured_batches)} batches of {args.batch_size} at {args.rate:g}/s "
            f"({args.writer}) ..."
        )
        cpu_before = process_cpu_seconds(pid)
        load_before = os.getloadavg()[0]
        committed, latencies, lag = await drive(write, measured_batches, args.rate, args.in_flight)
        ours.send(("expect", set(committed), args.drain))
        _, received, failures, child_cpu = await message(args.drain + 60)
        cpu_after = process_cpu_seconds(pid)
        rss_after = rss_kb(pid)
        rss_peak = _status_kb(pid, "VmHWM:")
        anon_after = _status_kb(pid, "RssAnon:")
        load_after = os.getloadavg()[0]
        ours.send(("close",))
        closing = True
        # And once the subscribers are gone and the server has had a moment to itself.
        await asyncio.to_thread(child.join, 30)
        await asyncio.sleep(CLOSED_SECONDS)
        rss_closed = rss_kb(pid)
        anon_closed = _status_kb(pid, "RssAnon:")
    return check(
        args,
        committed=committed,
        received=received,
        failures=failures,
        latencies=latencies,
        lag_ms=lag * 1000,
        server_cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        subscriber_cpu_s=child_cpu,
        rss_kb={
            "idle": rss_idle,
            "connected": rss_connected,
            "after": rss_after,
            "peak": rss_peak,
            "closed": rss_closed,
            # Of which anonymous memory (the heap; the rest is mapped files and shared memory).
            "anon_after": anon_after,
            "anon_closed": anon_closed,
        },
        load=[load_before, load_after],
    )


def check(args: argparse.Namespace, *, committed: dict[int, float], received, failures, **rest):
    """Every event written reached every subscriber exactly once, in commit order; the delays."""
    written = set(committed)
    delays: list[float] = []
    delivered: list[int] = []
    last = 0.0  # the last delivery
    problems = list(failures)
    for n, records in enumerate(received):
        mine = [(cursor, a, t) for cursor, a, t in records if a in written]
        ids = [a for _, a, _ in mine]
        if len(ids) != len(set(ids)):
            problems.append(f"subscriber {n}: {len(ids) - len(set(ids))} events delivered twice")
        missing = written - set(ids)
        if missing:
            problems.append(f"subscriber {n}: {len(missing)} of {len(written)} events missing")
        positions = [events.decode(cursor).id for cursor, _, _ in records]
        if positions != sorted(set(positions)):
            problems.append(f"subscriber {n}: events out of commit order")
        delivered.append(len(set(ids)))
        delays += [t - committed[a] for _, a, t in mine]
        last = max([last, *(t for _, _, t in mine)])
    delays.sort()
    latencies = sorted(rest.pop("latencies"))
    return {
        "config": {
            "subscribers": args.subscribers,
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "batch_size": args.batch_size,
            "writer": args.writer,
            "in_flight": args.in_flight,
            "compression": args.compression or "none",
            "backend": "postgresql" if args.postgresql else "sqlite",
        },
        "written": len(written),
        "delivered_per_subscriber": {"min": min(delivered), "max": max(delivered)},
        "problems": problems,
        "delay_ms": {
            "p50": round(percentile(delays, 0.5) * 1000, 1),
            "p99": round(percentile(delays, 0.99) * 1000, 1),
            "max": round(delays[-1] * 1000, 1),
            "min": round(delays[0] * 1000, 1),
        }
        if delays
        else None,
        "write_latency_ms": {
            "p50": round(percentile(latencies, 0.5) * 1000, 1),
            "p99": round(percentile(latencies, 0.99) * 1000, 1),
        },
        "last_delivery_after_last_commit_s": round(last - max(committed.values()), 3),
        **{
            key: round(value, 2) if isinstance(value, float) else value
            for key, value in rest.items()
        },
    }


def report(result: dict) -> None:
    c = result["config"]
    print(
        f"change stream fan-out: {c['subscribers']} GraphQL subscribers (graphql-transport-ws) "
        f"on one server process, {c['backend']}; {c['rate_per_s']:g} batches/s of "
        f"{c['batch_size']} for {c['seconds']:g} s, written {c['writer']} "
        f"(at most {c['in_flight']} in flight); websocket compression {c['compression']}"
    )
    per = result["delivered_per_subscriber"]
    print(
        f"events written {result['written']}, delivered per subscriber {per['min']}"
        + ("" if per["min"] == per["max"] else f"-{per['max']}")
        + f" ({result['written'] * c['subscribers']:,} messages in all)"
    )
    d = result["delay_ms"]
    if d:
        print(
            f"delivery delay (read by the subscriber - commit seen by the writer): "
            f"p50 {d['p50']:.1f} ms, p99 {d['p99']:.1f} ms, max {d['max']:.1f} ms "
            f"(min {d['min']:.1f} ms)"
        )
    w = result["write_latency_ms"]
    print(
        f"writes: latency p50 {w['p50']:.1f} ms, p99 {w['p99']:.1f} ms, sent at most "
        f"{result['lag_ms']:.0f} ms after their scheduled time; the last delivery "
        f"{result['last_delivery_after_last_commit_s'] * 1000:.0f} ms after the last commit"
    )
    cpu = result["server_cpu_s"]
    print(
        "CPU while writing and delivering: server "
        + ("-" if cpu is None else f"{cpu:.1f} s")
        + f", subscriber process {result['subscriber_cpu_s']:.1f} s (all of its run)"
    )
    rss = result["rss_kb"]
    print(
        f"server RSS: {rss['idle'] / 1024:.1f} MB before the subscribers, "
        f"{rss['connected'] / 1024:.1f} MB once connected, {rss['after'] / 1024:.1f} MB after "
        f"the run (peak {rss['peak'] / 1024:.1f} MB), {rss['closed'] / 1024:.1f} MB "
        f"{CLOSED_SECONDS:g} s after the subscribers closed (anonymous memory of these two: "
        f"{rss['anon_after'] / 1024:.1f} and {rss['anon_closed'] / 1024:.1f} MB)"
    )
    print(f"load average {result['load'][0]:.2f} -> {result['load'][1]:.2f}")
    if result["problems"]:
        print("NOT every event reached every subscriber once, in order:")
        for problem in result["problems"][:20]:
            print(f"  {problem}")
    else:
        print("every event reached every subscriber exactly once, in commit order")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="cmdbgraph-fanout-"))
    count = math.ceil(args.rate * args.seconds)
    total = WARMUP_BATCHES + count
    try:
        with contextlib.ExitStack() as stack:
            if args.postgresql:
                from tests.support.pgserver import postgres_server

                log("starting a throwaway PostgreSQL ...")
                store: SqliteStore | PostgresStore = PostgresStore(
                    stack.enter_context(postgres_server())
                )
            else:
                store = SqliteStore(directory)
            log(f"preparing {2 * total * args.batch_size} instances ...")
            batches = run_async(prepare(store.base_url, args.batch_size, total))
            workload = Workload(args.batch_size, 0, total, False, batches)
            url = store.clone("fanout")
            result = run_async(measure(args, url, workload, directory))
    finally:
        if args.keep:
            log(f"kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
    if result["problems"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
