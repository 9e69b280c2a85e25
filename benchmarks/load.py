"""``python -m benchmarks.load``: throughput of ``batch_create_instance_association`` under
concurrency, and the event loop's lag under the costliest GraphQL queries.

For each backend (SQLite; PostgreSQL, a throwaway server, when its binaries are found), each
number of server processes (``--workers``, ``CMDBGRAPH_WORKERS``) and each shape, one real
``cmdbgraph serve`` process on 127.0.0.1 (``CMDBGRAPH_AUTH=false``, a fresh database of its
own) receives ``POST /api/c/compapi/v2/cc/batch_create_instance_association/`` (the REST shim,
the ESB body of ``tests/support/calls.rest_body``) from Debian's ``wrk`` with
``benchmarks/load.lua``, for ``--seconds`` at each ``--concurrency`` (wrk's connections, one or
two wrk threads). Every body is a batch of ``--batch-size`` fresh pairs of a 1:1 model
association (every item succeeds; no instance is used twice), pre-generated into a file each
wrk thread takes its own slice of. Shapes: ``mixed`` spreads the batches over 8 model
associations between 8 pairs of models; ``hot`` sends every batch to one, so the batches
serialize on its lock.

Per row: associations and batches a second, wrk's p50 and p99 latency, errors (not HTTP 200,
``result`` not true, a failed item, a socket error or a timeout), the server's peak resident
memory (the serve process and its workers), the CPU time a batch cost (the server's processes,
and PostgreSQL's own processes on PostgreSQL) and the CPU-bound ceiling it implies: the cores
/ CPU time per batch, with the ratio measured / ceiling. Then, per backend, ``/healthz``
latency probed 20 times a second while a query near the GraphQL cost limit runs back to back
on the same single-process server (a 1,000-node topology, and a 500-instance page with nested
associations, on a graph of ``--lag-associations`` associations). Run from the repository
root:

    .venv/bin/python -m benchmarks.load [--seconds 10] [--concurrency 1,8,32,64]
        [--workers 1,2] [--shapes mixed,hot] [--postgresql | --sqlite-only |
        --postgresql-only] [--no-lag] [--json] [--keep]

Needs ``wrk`` (``apt-get install wrk``). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import http.client
import json
import math
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from benchmarks.preparation import copy_connection
from cmdbgraph.db import migrate
from cmdbgraph.db.engine import Database
from cmdbgraph.services import catalog
from cmdbgraph.services.caller import SYSTEM
from cmdbgraph.settings import Settings
from tests.support.calls import ESB_PATH, rest_body
from tests.support.servers import ServerFailed, live_server

ROOT = Path(__file__).resolve().parents[1]
LUA = Path(__file__).with_name("load.lua")
CORES = len(os.sched_getaffinity(0))
SHAPES = ("mixed", "hot")
# Model associations of the mixed shape; the hot shape uses the first.
ASSOCIATIONS = 8
KIND = "default"
# What a successful REST reply holds: result true and no failed item.
REST_CHECKS = ('+"result":true', '+"error_msg":{}')
# A GraphQL reply with data and no error.
GRAPHQL_CHECKS = ('+{"data":{', '-"errors":')
# wrk's per-request timeout: beyond the server's own request timeout (30 s).
WRK_TIMEOUT = "60s"
# Bodies generated per row: this many times what the CPU-bound ceiling lets a row consume (see
# Bench.bodies_needed); what is not sent is used by the next rows. A row that runs out anyway
# is run again with twice as many.
BODY_MARGIN = 1.1
# Batches a second assumed before the warm-up measured any (it only sizes the warm-up).
WARMUP_RATE = 50.0
# After wrk stops, the batches still in flight finish: wait until the server and PostgreSQL
# use less than this share of one core, for at most SETTLE_SECONDS.
SETTLE_IDLE = 0.1
SETTLE_SECONDS = 20.0
# /healthz probes a second, during the lag measurement.
PROBE_RATE = 20
LAG_GOAL_MS = 50.0
# The goal row.
GOAL = {"backend": "postgresql", "workers": 2, "connections": 32}
GOAL_RATIO = 0.8
GOAL_TAIL = 4.0
WRK_MISSING = (
    "wrk is not installed: this benchmark drives the server with Debian's wrk. Install it "
    "with `apt-get install wrk` (as root, after `apt-get update`) and run again."
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(ordered: list[float], fraction: float) -> float:
    """The value that ``fraction`` of ``ordered`` (sorted) do not exceed (nearest rank)."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def src_obj(k: int) -> str:
    return f"load_src_{k}"


def dst_obj(k: int) -> str:
    return f"load_dst_{k}"


def obj_asst_id(k: int) -> str:
    return f"{src_obj(k)}_{KIND}_{dst_obj(k)}"


# ---------------------------------------------------------------------------------------------
# Processes: CPU time and resident memory of a process and its descendants, from /proc


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children[int(fields[1])].append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def tree_cpu_seconds(root: int | None) -> float:
    """CPU time of ``root`` and its descendants: user + system of each live one, and of the
    children they reaped (proc(5) fields 14-17). A child that exits and is reaped moves its
    time into its parent's, so the sum only grows."""
    if root is None:
        return 0.0
    ticks = 0
    for pid in descendants(root):
        fields = _stat(pid)
        if fields is not None:
            ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss_kb(root: int) -> int:
    total = 0
    for pid in descendants(root):
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
    return total


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, all) CPU time of the whole machine since boot, all cores (/proc/stat's first
    line; idle and iowait are not busy, steal is: the hypervisor gave it to someone else)."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    total = sum(values)  # guest time is already in user
    return (total - values[3] - values[4]) / os.sysconf("SC_CLK_TCK"), total / os.sysconf(
        "SC_CLK_TCK"
    )


def children_cpu_seconds() -> float:
    """CPU time of this process's reaped children (wrk, once it has exited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------
# Databases: the catalog through the service, instances in bulk, counts


async def prepare_catalog(url: str) -> None:
    """Migrate; 8 pairs of models, each with a 1:1 model association."""
    db = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(db)
        for k in range(ASSOCIATIONS):
            await catalog.create_model(db, SYSTEM, catalog.NewModel(src_obj(k), f"source {k}"))
            await catalog.create_model(db, SYSTEM, catalog.NewModel(dst_obj(k), f"target {k}"))
            await catalog.create_model_association(
                db,
                SYSTEM,
                catalog.NewModelAssociation(src_obj(k), dst_obj(k), KIND, mapping="1:1"),
            )
    finally:
        await db.dispose()


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class SqliteTarget:
    """A server's SQLite database, written and counted with stdlib sqlite3 (between rows)."""

    backend = "sqlite"
    postmaster: int | None = None

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}.sqlite3"
        self.url = f"sqlite+aiosqlite:///{self.path}"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=60)
        conn.execute("PRAGMA busy_timeout = 60000")
        return conn

    def insert_instances(self, ranges: list[tuple[int, int, str, str]]) -> None:
        """Instances ``first`` .. ``first + count - 1`` of model ``obj``, named ``prefix`` and
        the id: (first, count, obj, prefix) each, generated by SQLite itself."""
        now = _now_text()
        with contextlib.closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            for first, count, obj, prefix in ranges:
                conn.execute(
                    "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                    "INSERT INTO instances (bk_inst_id, bk_obj_id, bk_inst_name, attributes, "
                    "bk_supplier_account, creator, create_time, last_time) "
                    "SELECT i, ?, ? || i, json_object('bk_inst_name', ? || i), '0', 'bench', ?, ? "
                    "FROM n",
                    (first, first + count - 1, obj, prefix, prefix, now, now),
                )
            # Ids generated later start above these (AUTOINCREMENT's counter).
            top = max(first + count - 1 for first, count, _, _ in ranges)
            if not conn.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'instances'", (top,)
            ).rowcount:
                conn.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('instances', ?)", (top,)
                )
            conn.execute("COMMIT")

    def scalar(self, sql: str, *args: object) -> int:
        with contextlib.closing(self._connect()) as conn:
            return conn.execute(sql, args).fetchone()[0]

    def close(self) -> None:
        pass


class PostgresTarget:
    """A server's database on the throwaway PostgreSQL, written and counted with asyncpg on one
    connection kept open (so that no helper backend starts or ends inside a measurement)."""

    backend = "postgresql"

    def __init__(self, server, name: str, postmaster: int | None) -> None:
        self.server = server
        self.name = name
        self.postmaster = postmaster
        self.url = server.url(name)
        self.runner = asyncio.Runner()
        self.runner.run(self._create())
        self.conn = self.runner.run(self._open())

    async def _create(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.server.dsn("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()

    async def _open(self):
        return await copy_connection(self.server.dsn(self.name))

    def insert_instances(self, ranges: list[tuple[int, int, str, str]]) -> None:
        """As SqliteTarget's, generated by PostgreSQL; then ANALYZE, so that autovacuum has
        no reason to visit ``instances`` during the next row (whose CPU time it would add to)."""

        async def run() -> None:
            async with self.conn.transaction():
                # The rows are valid by construction (their model exists): no foreign-key
                # trigger per row (the server's user is the cluster's superuser).
                await self.conn.execute("SET LOCAL session_replication_role = replica")
                for first, count, obj, prefix in ranges:
                    await self.conn.execute(
                        "INSERT INTO instances (bk_inst_id, bk_obj_id, bk_inst_name, attributes, "
                        "bk_supplier_account, creator, create_time, last_time) "
                        "SELECT i, $1, $2 || i, jsonb_build_object('bk_inst_name', $2 || i), "
                        "'0', 'bench', now(), now() "
                        "FROM generate_series($3::bigint, $4::bigint) AS i",
                        obj,
                        prefix,
                        first,
                        first + count - 1,
                    )
                await self.conn.execute(
                    "SELECT setval(pg_get_serial_sequence('instances', 'bk_inst_id'), "
                    "(SELECT max(bk_inst_id) FROM instances))"
                )
            await self.conn.execute("ANALYZE instances")

        self.runner.run(run())

    def scalar(self, sql: str, *args: object) -> int:
        # sqlite3's ? placeholders, as asyncpg's $n.
        for n in range(1, len(args) + 1):
            sql = sql.replace("?", f"${n}", 1)
        return self.runner.run(self.conn.fetchval(sql, *args))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.runner.run(self.conn.close())
        self.runner.close()


def postmaster_pid(server) -> int | None:
    """The throwaway PostgreSQL's postmaster (first line of ``postmaster.pid``)."""
    control = server.control
    try:
        datadir = Path(control[control.index("-D") + 1])
        return int((datadir / "postmaster.pid").read_text().split()[0])
    except (ValueError, IndexError, OSError):
        return None


class PairPool:
    """Fresh (source, target) pairs per model association: instances no batch has used,
    inserted in bulk when more are needed. Bodies that wrk did not send give their pairs back."""

    def __init__(self, target, seed: int = 20240611) -> None:
        self.target = target
        self.pairs: dict[int, collections.deque[tuple[int, int]]] = {
            k: collections.deque() for k in range(ASSOCIATIONS)
        }
        self.next_id = target.scalar("SELECT coalesce(max(bk_inst_id), 0) FROM instances") + 1
        self.rng = random.Random(seed)
        self.created = 0

    def ensure(self, needed: dict[int, int]) -> None:
        """At least ``needed[k]`` fresh pairs for each model association ``k``."""
        ranges: list[tuple[int, int, str, str]] = []
        for k, count in needed.items():
            missing = count - len(self.pairs[k])
            if missing <= 0:
                continue
            missing += 1000  # fewer, larger inserts
            first = self.next_id
            self.next_id += 2 * missing
            ranges += [
                (first, missing, src_obj(k), "s-"),
                (first + missing, missing, dst_obj(k), "d-"),
            ]
            sources = range(first, first + missing)
            targets = list(range(first + missing, first + 2 * missing))
            # Callers link arbitrary instances, not neighbours in the primary key.
            self.rng.shuffle(targets)
            self.pairs[k].extend(zip(sources, targets, strict=True))
        if ranges:
            self.target.insert_instances(ranges)
            self.created += sum(count for _, count, _, _ in ranges)

    def take(self, k: int, count: int) -> list[tuple[int, int]]:
        queue = self.pairs[k]
        return [queue.popleft() for _ in range(count)]

    def give_back(self, k: int, pairs: list[tuple[int, int]]) -> None:
        self.pairs[k].extendleft(reversed(pairs))


# ---------------------------------------------------------------------------------------------
# Bodies, wrk and its result (the pure parts are tested in tests/test_benchmarks_load.py)


def body_associations(shape: str, count: int) -> list[int]:
    """The model association of each of ``count`` bodies: round robin over the 8 (mixed), or
    always the first (hot)."""
    if shape == "hot":
        return [0] * count
    return [j % ASSOCIATIONS for j in range(count)]


def body_line(k: int, pairs: list[tuple[int, int]]) -> bytes:
    """One request body (the ESB shape, demo credentials included), one line."""
    return orjson.dumps(rest_body(src_obj(k), dst_obj(k), obj_asst_id(k), pairs))


def wrk_threads(connections: int) -> int:
    """Two wrk threads when the connections split evenly, else one: wrk stays small."""
    return 2 if connections >= 2 and connections % 2 == 0 else 1


def consumed_bodies(threads: list[dict], thread_count: int) -> set[int]:
    """The bodies wrk used (sent, or built once to check the script): thread ``t`` takes the
    lines t, t + T, ... in order, ``built`` of them (at most as many as it had)."""
    used: set[int] = set()
    for info in threads:
        t = info["id"]
        for n in range(min(info["built"], info["bodies"])):
            used.add(t + n * thread_count)
    return used


def parse_wrk_output(stdout: str) -> dict:
    """The JSON line load.lua's done() prints, with totals over the threads."""
    for line in stdout.splitlines():
        if line.startswith("LOAD-RESULT "):
            result = json.loads(line[len("LOAD-RESULT ") :])
            break
    else:
        raise ValueError(f"no LOAD-RESULT line in wrk's output:\n{stdout[-2000:]}")
    threads = result["threads"]
    for name in ("replies", "ok", "bad_status", "bad_body", "exhausted"):
        result[name] = sum(t[name] for t in threads)
    socket_errors = sum(result["errors"][k] for k in ("connect", "read", "write", "timeout"))
    result["failed"] = result["replies"] - result["ok"] + socket_errors
    result["first_error"] = next((t["first_error"] for t in threads if t["first_error"]), "")
    return result


def wrk_argv(
    url: str,
    bodies: Path,
    *,
    connections: int,
    seconds: int,
    cycle: bool,
    checks: tuple[str, ...],
) -> list[str]:
    threads = wrk_threads(connections)
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        WRK_TIMEOUT,
        "-s",
        str(LUA),
        url,
        "--",
        str(bodies),
        str(threads),
        "1" if cycle else "0",
        *checks,
    ]


def run_wrk(
    argv: list[str],
    seconds: int,
    *,
    every: Callable[[], None] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> dict:
    """Run wrk (killed if it outlives its time by a minute, or on any error here), calling
    ``meanwhile`` once it started, then ``every`` about 4 times a second until it ends; its
    parsed result, with its own CPU time (``wrk_cpu_s``)."""
    cpu = children_cpu_seconds()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    deadline = time.monotonic() + seconds + 60
    try:
        if meanwhile is not None:
            meanwhile()
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    raise SystemExit(f"wrk did not end in time: {' '.join(argv)}") from None
                if every is not None:
                    every()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise SystemExit(f"wrk failed ({process.returncode}): {stderr.strip()[-2000:]}")
    try:
        result = parse_wrk_output(stdout)
    except ValueError as error:
        raise SystemExit(f"{error}\n{stderr[-2000:]}") from None
    result["wrk_cpu_s"] = children_cpu_seconds() - cpu
    return result


# ---------------------------------------------------------------------------------------------
# One server, its rows


@dataclass
class Row:
    backend: str
    workers: int
    shape: str
    connections: int
    threads: int
    batch_size: int
    seconds: float
    ok_batches: int
    failed: int
    exhausted: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rss_peak_mb: float
    committed_batches: float
    server_cpu_s: float
    postgres_cpu_s: float
    wrk_cpu_s: float
    settle_s: float
    prepare_s: float
    # Associations already stored in the model association a batch of the row writes to (hot),
    # or in each of the 8 on average (mixed).
    stored_before: int
    # Of the machine's CPU time while wrk ran: the share left idle, and the share used by
    # processes other than the server, PostgreSQL, wrk and this one.
    idle_share: float
    others_share: float
    bodies: int
    first_error: str = ""
    errors: dict = field(default_factory=dict)

    @property
    def batches_per_s(self) -> float:
        return self.ok_batches / self.seconds

    @property
    def associations_per_s(self) -> float:
        return self.batches_per_s * self.batch_size

    @property
    def cpu_ms_per_batch(self) -> float | None:
        if self.committed_batches <= 0:
            return None
        return (self.server_cpu_s + self.postgres_cpu_s) / self.committed_batches * 1000

    @property
    def ceiling_associations_per_s(self) -> float | None:
        cpu = self.cpu_ms_per_batch
        return None if not cpu else CORES / (cpu / 1000) * self.batch_size

    @property
    def ratio(self) -> float | None:
        ceiling = self.ceiling_associations_per_s
        return None if not ceiling else self.associations_per_s / ceiling

    @property
    def ratio_of_available(self) -> float | None:
        """The ratio against the share of the cores other processes left (they compete for
        the same cores: context, not the goal)."""
        ratio = self.ratio
        left = 1 - self.others_share
        return None if ratio is None or left <= 0 else ratio / left

    def as_dict(self) -> dict:
        out = {k: v for k, v in vars(self).items()}
        for name in (
            "batches_per_s",
            "associations_per_s",
            "cpu_ms_per_batch",
            "ceiling_associations_per_s",
            "ratio",
            "ratio_of_available",
        ):
            value = getattr(self, name)
            out[name] = None if value is None else round(value, 3)
        return out


class Bench:
    """One server process on its own fresh database, and the rows measured against it."""

    def __init__(
        self, args: argparse.Namespace, target, workers: int, server_url: str, server_pid: int
    ) -> None:
        self.args = args
        self.workers = workers
        self.target = target
        self.url = server_url + ESB_PATH
        self.pid = server_pid
        self.pool = PairPool(target)
        self.directory = Path(tempfile.mkdtemp(prefix="bodies-", dir=args.directory))
        self.committed_total = 0
        # What went wrong without stopping the run (reported with the results).
        self.problems: list[str] = []
        # The least CPU time per batch seen: how many bodies a row needs.
        self.cpu_per_batch: float | None = None

    def cpu(self) -> tuple[float, float]:
        return tree_cpu_seconds(self.pid), tree_cpu_seconds(self.target.postmaster)

    def stored(self) -> int:
        """Associations stored in the database, all of them."""
        return self.target.scalar("SELECT count(*) FROM inst_associations")

    def settle(self) -> float:
        """Wait for the batches still in flight when wrk stopped: until the server and
        PostgreSQL idle and no association was added for a while (or SETTLE_SECONDS); how
        long it took."""
        began = time.monotonic()
        newest = "SELECT coalesce(max(id), 0) FROM inst_associations"
        previous, last = sum(self.cpu()), self.target.scalar(newest)
        quiet = 0
        while time.monotonic() - began < SETTLE_SECONDS:
            time.sleep(0.25)
            now, top = sum(self.cpu()), self.target.scalar(newest)
            quiet = quiet + 1 if now - previous < SETTLE_IDLE * 0.25 and top == last else 0
            if quiet >= 2:
                break
            previous, last = now, top
        return time.monotonic() - began

    def bodies_needed(self, connections: int, seconds: int, *, generous: bool = False) -> int:
        """Bodies enough for a row: what the CPU-bound ceiling (the least CPU time per batch
        seen on this server) allows in the row's time, times BODY_MARGIN (twice that when
        ``generous``: after a row ran out). What is not sent goes back to the pool."""
        rate = CORES / self.cpu_per_batch if self.cpu_per_batch else WARMUP_RATE
        margin = BODY_MARGIN * (2 if generous else 1)
        return math.ceil(rate * margin * seconds) + 2 * connections + 2

    def row(self, shape: str, connections: int, seconds: int, *, generous: bool = False) -> Row:
        args = self.args
        size = args.batch_size
        began = time.monotonic()
        count = self.bodies_needed(connections, seconds, generous=generous)
        plan = body_associations(shape, count)
        self.pool.ensure({k: n * size for k, n in collections.Counter(plan).items()})
        batches = [(k, self.pool.take(k, size)) for k in plan]
        path = self.directory / f"{shape}-{connections}.jsonl"
        with open(path, "wb") as out:
            for k, pairs in batches:
                out.write(body_line(k, pairs) + b"\n")
        threads = wrk_threads(connections)
        prepared = time.monotonic() - began
        argv = wrk_argv(
            self.url,
            path,
            connections=connections,
            seconds=seconds,
            cycle=False,
            checks=REST_CHECKS,
        )
        stored_before_row = self.stored()
        # The rows the model association(s) of this row already hold: what its checks read.
        stored = self.target.scalar(
            "SELECT count(*) FROM inst_associations WHERE bk_obj_asst_id = ?", obj_asst_id(0)
        )
        if shape == "mixed":
            stored = self.committed_total // ASSOCIATIONS
        server_cpu, pg_cpu = self.cpu()
        peak = [tree_rss_kb(self.pid)]

        def sample() -> None:
            peak[0] = max(peak[0], tree_rss_kb(self.pid))

        machine_busy, machine_all = machine_cpu_seconds()
        own = time.process_time()
        result = run_wrk(argv, seconds, every=sample)
        # While wrk ran: the machine's CPU time, and what of it was not ours.
        own = time.process_time() - own
        server_now, pg_now = self.cpu()
        busy, every = machine_cpu_seconds()
        machine_busy, machine_all = busy - machine_busy, every - machine_all
        ours = server_now - server_cpu + pg_now - pg_cpu + result["wrk_cpu_s"] + own
        settle = self.settle()
        server_after, pg_after = self.cpu()
        committed = self.stored() - stored_before_row
        self.committed_total += committed
        path.unlink()
        # Bodies wrk never used go back to the pool (their instances are still fresh).
        used = consumed_bodies(result["threads"], threads)
        for j in sorted(set(range(count)) - used, reverse=True):
            k, pairs = batches[j]
            self.pool.give_back(k, pairs)
        row = Row(
            backend=self.target.backend,
            workers=self.workers,
            shape=shape,
            connections=connections,
            threads=threads,
            batch_size=size,
            seconds=result["duration_us"] / 1e6,
            ok_batches=result["ok"],
            failed=result["failed"],
            exhausted=result["exhausted"],
            p50_ms=result["latency_us"]["p50"] / 1000,
            p99_ms=result["latency_us"]["p99"] / 1000,
            max_ms=result["latency_us"]["max"] / 1000,
            rss_peak_mb=peak[0] / 1024,
            committed_batches=committed / size,
            server_cpu_s=server_after - server_cpu,
            postgres_cpu_s=pg_after - pg_cpu,
            wrk_cpu_s=result["wrk_cpu_s"],
            settle_s=settle,
            prepare_s=prepared,
            idle_share=1 - machine_busy / machine_all if machine_all else 0.0,
            others_share=max(0.0, machine_busy - ours) / machine_all if machine_all else 0.0,
            bodies=count,
            stored_before=stored,
            first_error=result["first_error"],
            errors={
                **result["errors"],
                "bad_status": result["bad_status"],
                "bad_body": result["bad_body"],
            },
        )
        if committed < row.ok_batches * size:
            self.problems.append(
                f"{self.target.backend}, {self.workers} worker(s), {shape} x{connections}: "
                f"{row.ok_batches} batches answered as written but only {committed} "
                "associations stored by the end of the row"
            )
        per_batch = row.cpu_ms_per_batch
        if per_batch:
            seen = per_batch / 1000
            self.cpu_per_batch = min(self.cpu_per_batch or seen, seen)
        return row

    def check_written(self) -> None:
        """Every association stored has its audit entry (the service writes both or none),
        and every one was counted in its row."""
        self.settle()
        stored = self.stored()
        audited = self.target.scalar(
            "SELECT count(*) FROM audit_entries WHERE resource_type = 'instance_association' "
            "AND action = 'create'"
        )
        where = f"{self.target.backend}, {self.workers} worker(s)"
        if audited != stored:
            self.problems.append(
                f"{where}: {stored} associations stored but {audited} audit entries of them"
            )
        if stored != self.committed_total:
            self.problems.append(
                f"{where}: {stored} associations stored, {self.committed_total} counted in the "
                "rows (some batches committed after their row ended)"
            )


@contextlib.contextmanager
def serve(url: str, log_path: Path, workers: int) -> Iterator[tuple[str, int]]:
    """``cmdbgraph serve`` as the tests start it (127.0.0.1, a free port), ``workers``
    processes: (base URL, pid of the serve process). Always terminated on exit."""
    env = {
        "CMDBGRAPH_AUTH": "false",
        "CMDBGRAPH_WORKERS": str(workers),
        # The server imports the same cmdbgraph as this process: the one next to benchmarks/.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    try:
        with live_server(url, log_path, env=env) as server:
            pid = server.process.pid
            # With several workers /healthz answers once the first does: wait for them all.
            deadline = time.monotonic() + 60
            while workers > 1 and len(descendants(pid)) < workers + 1:
                if time.monotonic() > deadline or server.process.poll() is not None:
                    raise SystemExit(f"{workers} workers did not start:\n{server.log()[-3000:]}")
                time.sleep(0.2)
            yield server.url, pid
            if server.process.poll() is not None:
                raise SystemExit(f"the server exited during the run:\n{server.log()[-3000:]}")
    except ServerFailed as failure:
        raise SystemExit(str(failure)) from None


def measure_backend(
    args: argparse.Namespace, make_target, rows: list[Row], problems: list[str]
) -> None:
    """Every row of one backend, a fresh database and server per number of workers; appends
    to ``rows`` as they come (a failure keeps the rows before it)."""
    for workers in args.workers:
        target = make_target(f"load_w{workers}")
        try:
            asyncio.run(prepare_catalog(target.url))
            log_path = args.directory / f"server-{target.backend}-w{workers}.log"
            with serve(target.url, log_path, workers) as (base_url, pid):
                bench = Bench(args, target, workers, base_url, pid)
                # Warm-up (not reported): every worker imports, connects and caches; and a
                # first estimate of the CPU time per batch, which sizes the bodies of the rows.
                warm = bench.row("mixed", 2 * workers, min(2, args.seconds))
                log(
                    f"[{target.backend}, {workers} worker(s)] warmed up: "
                    f"{warm.batches_per_s:.0f} batches/s, "
                    f"{warm.cpu_ms_per_batch or 0:.1f} ms CPU a batch"
                )
                for connections in args.concurrency:
                    for shape in args.shapes:
                        row = bench.row(shape, connections, args.seconds)
                        if row.exhausted:
                            log(row_line(row) + "; again with more bodies")
                            row = bench.row(shape, connections, args.seconds, generous=True)
                        rows.append(row)
                        log(
                            f"{row_line(row)}  [{row.bodies} bodies, prepared in "
                            f"{row.prepare_s:.1f} s, settled in {row.settle_s:.1f} s]"
                        )
                bench.check_written()
                problems += bench.problems
                for problem in bench.problems:
                    log(f"PROBLEM: {problem}")
                log(
                    f"[{target.backend}, {workers} worker(s)] {bench.committed_total:,} "
                    f"associations written, {bench.pool.created:,} instances created"
                )
        finally:
            target.close()


# ---------------------------------------------------------------------------------------------
# Event-loop lag: /healthz while the costliest queries run


INSTANCES_QUERY = """
query Heavy($model: String!) {
  instancesConnection(bkObjId: $model, first: 500) {
    edges {
      cursor
      node {
        bkInstId bkObjId bkInstName attributes
        associationsAsSource(limit: 2) { id bkAsstInstId target { bkInstId bkInstName } }
      }
    }
  }
}
"""


def lag_queries(start: int) -> dict[str, dict]:
    """The queries the lag is measured under: name -> request body."""
    from benchmarks import topology

    return {
        "topology": {
            "query": topology.GRAPHQL,
            "variables": {"id": start, "depth": 3, "maxNodes": 1000},
        },
        "instances": {"query": INSTANCES_QUERY, "variables": {"model": topology.MODEL}},
    }


def query_cost(body: dict) -> tuple[int, int]:
    """(the cost the server computes for ``body`` before running it, the limit)."""
    from graphql import OperationDefinitionNode, parse

    from cmdbgraph.api import build_schema
    from cmdbgraph.schema import limits
    from cmdbgraph.services.limits import Limits

    settings = Settings()
    document = parse(body["query"])
    [operation] = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    cost = limits.query_cost(
        build_schema(settings)._schema,
        limits.CostModel(Limits.from_settings(settings)),
        document,
        operation,
        body["variables"],
    )
    return cost, settings.max_query_cost


def probe(base_url: str, seconds: float, rate: int = PROBE_RATE) -> tuple[list[float], int]:
    """GET /healthz ``rate`` times a second for ``seconds`` on one keep-alive connection:
    (each latency in ms, failures). A slow probe delays the next (never two at once)."""
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    latencies: list[float] = []
    failures = 0
    interval = 1 / rate
    began = time.perf_counter()
    due = began
    try:
        while time.perf_counter() - began < seconds:
            t0 = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                reply = conn.getresponse()
                reply.read()
                if reply.status != 200:
                    failures += 1
            except (OSError, http.client.HTTPException):
                failures += 1
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            due += interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
    finally:
        conn.close()
    return latencies, failures


def spread(latencies: list[float]) -> dict[str, float | None]:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    return {
        "p50": round(percentile(ordered, 0.5), 2),
        "p99": round(percentile(ordered, 0.99), 2),
        "max": round(ordered[-1], 2),
        "count": len(ordered),
    }


def measure_lag(args: argparse.Namespace, backend: str, results: list[dict], server=None) -> None:
    """Build the graph (benchmarks.topology's), serve it with one process, probe /healthz
    idle, then under each query sent back to back by wrk; appends to ``results``."""
    from benchmarks import topology

    degree = 5
    instances = args.lag_associations // degree
    pairs = topology.make_graph(instances, degree)
    start = topology.pick_start(pairs, instances, 3, 1000)
    if backend == "sqlite":
        path = args.directory / "lag.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
        asyncio.run(topology.prepare_catalog(url))
        topology.load_sqlite(path, instances, pairs)
        postmaster = None
    else:
        asyncio.run(topology._create_database(server.dsn(), "load_lag"))
        url = server.url("load_lag")
        asyncio.run(topology.prepare_catalog(url))
        asyncio.run(topology.load_postgresql(server.dsn("load_lag"), instances, pairs))
        postmaster = postmaster_pid(server)
    log_path = args.directory / f"server-{backend}-lag.log"
    with serve(url, log_path, 1) as (base_url, pid):
        idle, idle_failures = probe(base_url, 2.0)
        for name, body in lag_queries(start).items():
            cost, limit = query_cost(body)
            encoded = orjson.dumps(body)
            reply = httpx.post(
                f"{base_url}/graphql",
                content=encoded,
                timeout=60,
                headers={"Content-Type": "application/json"},
            )
            data = reply.json()
            if reply.status_code != 200 or data.get("errors"):
                raise SystemExit(f"lag query {name}: {reply.status_code} {reply.text[:500]}")
            path = args.directory / f"lag-{name}.jsonl"
            path.write_bytes(encoded + b"\n")
            argv = wrk_argv(
                f"{base_url}/graphql",
                path,
                connections=args.lag_connections,
                seconds=args.seconds,
                cycle=True,
                checks=GRAPHQL_CHECKS,
            )
            cpu = tree_cpu_seconds(pid) + tree_cpu_seconds(postmaster)
            probes: dict[str, tuple[list[float], int]] = {}

            def probing(probes=probes) -> None:
                # From 1 s after wrk started until about 0.5 s before it ends.
                time.sleep(1.0)
                probes["loaded"] = probe(base_url, max(1.0, args.seconds - 1.5))

            wrk = run_wrk(argv, args.seconds, meanwhile=probing)
            loaded, loaded_failures = probes["loaded"]
            cpu = tree_cpu_seconds(pid) + tree_cpu_seconds(postmaster) - cpu
            seconds = wrk["duration_us"] / 1e6
            results.append(
                {
                    "backend": backend,
                    "query": name,
                    "cost": cost,
                    "cost_limit": limit,
                    "reply_bytes": len(reply.content),
                    "queries_per_s": round(wrk["ok"] / seconds, 2),
                    "query_p50_ms": wrk["latency_us"]["p50"] / 1000,
                    "query_p99_ms": wrk["latency_us"]["p99"] / 1000,
                    "query_errors": wrk["failed"],
                    "cpu_ms_per_query": round(cpu / wrk["ok"] * 1000, 1) if wrk["ok"] else None,
                    "healthz_idle_ms": spread(idle),
                    "healthz_loaded_ms": spread(loaded),
                    "probe_failures": idle_failures + loaded_failures,
                    "connections": args.lag_connections,
                    "graph": {"instances": instances, "associations": len(pairs), "start": start},
                }
            )
            log(lag_line(results[-1]))


# ---------------------------------------------------------------------------------------------
# Report


HEADER = (
    f"{'backend':<11}{'workers':>7} {'shape':<6}{'conns':>6}{'assoc/s':>9}{'batch/s':>8}"
    f"{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'RSS MB':>7}{'CPU ms/b':>9}{'pg':>6}{'wrk':>6}"
    f"{'ceiling':>9}{'ratio':>6}{'idle':>6}{'others':>7}{'stored':>8}"
)


def row_line(r: Row) -> str:
    cpu = r.cpu_ms_per_batch
    per_batch = 1000 / r.committed_batches if r.committed_batches else 0.0
    ceiling = r.ceiling_associations_per_s
    ratio = r.ratio
    flags = ""
    if r.exhausted:
        flags += "  (ran out of bodies: a lower bound)"
    return (
        f"{r.backend:<11}{r.workers:>7} {r.shape:<6}{r.connections:>6}"
        f"{r.associations_per_s:>9.0f}{r.batches_per_s:>8.1f}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}"
        f"{r.failed:>7}{r.rss_peak_mb:>7.0f}"
        + (f"{cpu:>9.1f}" if cpu else f"{'-':>9}")
        + (f"{r.postgres_cpu_s * per_batch:>6.1f}" if r.backend == "postgresql" else f"{'':>6}")
        + f"{r.wrk_cpu_s * per_batch:>6.1f}"
        + (f"{ceiling:>9.0f}" if ceiling else f"{'-':>9}")
        + (f"{ratio:>6.2f}" if ratio else f"{'-':>6}")
        + f"{r.idle_share:>6.0%}{r.others_share:>7.0%}{r.stored_before / 1000:>7.0f}k"
        + flags
    )


def lag_line(r: dict) -> str:
    idle, loaded = r["healthz_idle_ms"], r["healthz_loaded_ms"]
    verdict = "met" if loaded["p99"] < LAG_GOAL_MS and not r["probe_failures"] else "NOT met"
    return (
        f"{r['backend']:<11}{r['query']:<10}{r['cost']:>6}{r['queries_per_s']:>8.1f}"
        f"{r['query_p50_ms']:>8.0f}{r['query_p99_ms']:>8.0f}"
        f"   {idle['p50']:>5.1f} {idle['p99']:>5.1f} {idle['max']:>6.1f}"
        f"   {loaded['p50']:>6.1f} {loaded['p99']:>6.1f} {loaded['max']:>6.1f}"
        f"   p99 < {LAG_GOAL_MS:g} ms: {verdict}"
    )


LAG_HEADER = (
    f"{'backend':<11}{'query':<10}{'cost':>6}{'q/s':>8}{'q p50':>8}{'q p99':>8}"
    "   healthz idle p50/p99/max   under load p50/p99/max   goal"
)


def goal_lines(rows: list[Row]) -> list[dict]:
    goals = []
    for shape in SHAPES:
        found = [
            r
            for r in rows
            if r.shape == shape
            and r.backend == GOAL["backend"]
            and r.workers == GOAL["workers"]
            and r.connections == GOAL["connections"]
        ]
        if not found:
            goals.append({"shape": shape, "measured": False})
            continue
        r = found[0]
        checks = {
            "zero_errors": r.failed == 0 and not r.exhausted,
            "p99_within_4x_p50": r.p99_ms <= GOAL_TAIL * r.p50_ms,
            "at_least_80pct_of_ceiling": (r.ratio or 0) >= GOAL_RATIO,
        }
        goals.append(
            {
                "shape": shape,
                "measured": True,
                "met": all(checks.values()),
                **checks,
                "errors": r.failed,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "ratio": r.ratio,
                "ratio_of_available": r.ratio_of_available,
                "others_share": r.others_share,
            }
        )
    return goals


def print_report(result: dict, rows: list[Row]) -> None:
    c = result["config"]
    print(
        f"batch_create_instance_association over REST, {c['batch_size']} fresh pairs a batch, "
        f"{c['seconds']} s a row; wrk {c['wrk']}; {CORES} cores; ceiling = {CORES} cores / CPU "
        "time per batch (server + PostgreSQL)"
    )
    print(HEADER)
    for row in rows:
        print(row_line(row))
    for goal in result["goals"]:
        label = (
            f"goal (concurrency {GOAL['connections']}, PostgreSQL, {GOAL['workers']} workers, "
            f"{goal['shape']}): zero errors, p99 <= {GOAL_TAIL:g}x p50, assoc/s >= "
            f"{GOAL_RATIO:.0%} of the CPU-bound ceiling: "
        )
        if not goal["measured"]:
            print(label + "not measured")
        else:
            missed = [
                k
                for k in ("zero_errors", "p99_within_4x_p50", "at_least_80pct_of_ceiling")
                if not goal[k]
            ]
            tail = goal["p99_ms"] / (goal["p50_ms"] or 1)
            print(
                label
                + ("met" if goal["met"] else f"NOT met ({', '.join(missed)})")
                + f" [errors {goal['errors']}, p99/p50 {tail:.1f}, "
                f"ratio {goal['ratio'] or 0:.2f}; other processes used "
                f"{goal['others_share']:.0%} of the cores meanwhile: "
                f"{goal['ratio_of_available'] or 0:.2f} of what they left]"
            )
    if result["lag"]:
        first = result["lag"][0]
        print()
        print(
            f"event-loop lag: GET /healthz {PROBE_RATE}/s on one server process while a query "
            f"runs back to back on {first['connections']} connections (graph of "
            f"{first['graph']['associations']:,} associations; cost limit {first['cost_limit']:,})"
        )
        print(LAG_HEADER)
        for lag in result["lag"]:
            print(lag_line(lag))
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}")
    loads = result["load_average"]
    print(
        f"load average {loads[0]:.2f} -> {loads[-1]:.2f} (1 min); wall time "
        f"{result['wall_seconds']:.0f} s"
    )


# ---------------------------------------------------------------------------------------------
# Driver


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk's duration per row (1-120)")
    parser.add_argument(
        "--concurrency", default="1,8,32,64", help="wrk connections, comma-separated"
    )
    parser.add_argument("--workers", default="1,2", help="server processes, comma-separated")
    parser.add_argument("--shapes", default="mixed,hot", help="mixed, hot or both")
    parser.add_argument("--batch-size", type=int, default=200, help="items per batch (1-200)")
    backends = parser.add_mutually_exclusive_group()
    backends.add_argument(
        "--postgresql",
        action="store_true",
        help="require PostgreSQL (by default it is measured when its binaries are found)",
    )
    backends.add_argument("--sqlite-only", action="store_true", help="SQLite only")
    backends.add_argument("--postgresql-only", action="store_true", help="PostgreSQL only")
    parser.add_argument("--no-lag", action="store_true", help="skip the event-loop lag part")
    parser.add_argument(
        "--lag-associations",
        type=int,
        default=100_000,
        help="associations of the graph the lag queries read",
    )
    parser.add_argument(
        "--lag-connections", type=int, default=2, help="connections sending the lag query"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    try:
        args.concurrency = _int_list(args.concurrency)
        args.workers = _int_list(args.workers)
    except ValueError:
        parser.error("--concurrency and --workers take comma-separated numbers")
    args.shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    if not args.concurrency or not all(1 <= c <= 1000 for c in args.concurrency):
        parser.error("--concurrency: numbers from 1 to 1000")
    if not args.workers or not all(1 <= w <= 8 for w in args.workers):
        parser.error("--workers: numbers from 1 to 8")
    if not args.shapes or set(args.shapes) - set(SHAPES):
        parser.error(f"--shapes: {', '.join(SHAPES)}")
    if not 1 <= args.seconds <= 120 or not 1 <= args.batch_size <= 200:
        parser.error("--seconds from 1 to 120, --batch-size from 1 to 200")
    if not 1_000 <= args.lag_associations <= 2_000_000 or not 1 <= args.lag_connections <= 16:
        parser.error("--lag-associations from 1,000 to 2,000,000, --lag-connections 1-16")
    return args


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(WRK_MISSING, file=sys.stderr)
        return 2
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    wrk_version = wrk_version.split("[")[0].replace("wrk", "").strip() or "?"
    from tests.support.pgserver import find_bindir, postgres_server

    backends = ["sqlite", "postgresql"]
    if args.sqlite_only:
        backends = ["sqlite"]
    elif args.postgresql_only:
        backends = ["postgresql"]
    if "postgresql" in backends and find_bindir() is None:
        if args.postgresql or args.postgresql_only:
            print("PostgreSQL's server binaries are not found (apt-get install postgresql)")
            return 2
        log("PostgreSQL's server binaries are not found: SQLite only (apt-get install postgresql)")
        backends = ["sqlite"]
    # SIGTERM ends the run as Ctrl-C does: every server, wrk and PostgreSQL is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.perf_counter()
    loads = [os.getloadavg()[0]]
    args.directory = Path(tempfile.mkdtemp(prefix="cmdbgraph-load-"))
    rows: list[Row] = []
    lag: list[dict] = []
    problems: list[str] = []
    try:
        for backend in backends:
            # A failure (the server exits, wrk fails, a check) ends this backend, not the report.
            try:
                if backend == "sqlite":
                    log("[sqlite] measuring ...")
                    make = functools.partial(SqliteTarget, args.directory)
                    measure_backend(args, make, rows, problems)
                    if not args.no_lag:
                        log("[sqlite] event-loop lag ...")
                        measure_lag(args, "sqlite", lag)
                else:
                    log("[postgresql] starting a throwaway server ...")
                    with postgres_server() as server:
                        postmaster = postmaster_pid(server)
                        make = functools.partial(PostgresTarget, server, postmaster=postmaster)
                        measure_backend(args, make, rows, problems)
                        if not args.no_lag:
                            log("[postgresql] event-loop lag ...")
                            measure_lag(args, "postgresql", lag, server)
            except SystemExit as failure:
                problems.append(f"{backend}: stopped: {failure}")
                log(f"PROBLEM: {backend}: stopped: {failure}")
            loads.append(os.getloadavg()[0])
    finally:
        if args.keep:
            log(f"kept {args.directory}")
        else:
            shutil.rmtree(args.directory, ignore_errors=True)
    result = {
        "config": {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "shapes": args.shapes,
            "batch_size": args.batch_size,
            "backends": backends,
            "lag_connections": args.lag_connections,
            "lag_associations": args.lag_associations,
            "wrk": wrk_version,
        },
        "environment": {
            "cores": CORES,
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
        },
        "rows": [r.as_dict() for r in rows],
        "goals": goal_lines(rows),
        "lag": lag,
        "lag_goal_p99_ms": LAG_GOAL_MS,
        "problems": problems,
        "load_average": loads,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result, rows)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
