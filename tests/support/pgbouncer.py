"""A throwaway PgBouncer on 127.0.0.1 in transaction pooling mode, in front of a throwaway
PostgreSQL server (``pgserver``), for tests.

Finds the binary (PATH, then Debian's /usr/sbin), writes its configuration and the user list
(the server's user and password) in a temporary directory, starts it on a free port and stops
it at the end. Any database name is passed through to the server of the same name, so each
test's fresh database is reachable through it. PgBouncer refuses to run as root: as root it
runs as the ``postgres`` user, as ``pgserver`` runs PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.pgserver import PostgresServer, PostgresUnavailable, as_postgres
from tests.support.ports import free_port

# Server connections per database and user: fewer than the clients the tests open (two server
# processes with pools of ten), so that transactions of different clients do share them.
POOL_SIZE = 8


class PgBouncerUnavailable(RuntimeError):
    pass


def find_binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found:
        return found
    return "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None


def require_binary() -> None:
    """Skip the calling test without PgBouncer; fail instead under CI, where the test command
    installed it."""
    import pytest

    if find_binary() is None:
        message = "PgBouncer not found (apt-get install pgbouncer); the test command installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class PgBouncer:
    """A running PgBouncer and the server behind it."""

    port: int
    server: PostgresServer
    log_path: str

    def url(self, database: str = "postgres") -> str:
        """The service's URL of ``database`` through the pooler."""
        user, password = self.server.user, self.server.password
        return f"postgresql+asyncpg://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        user, password = self.server.user, self.server.password
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as log:
            return log.read()
        return ""


def _config(base: str, port: int, server: PostgresServer) -> str:
    return f"""\
[databases]
* = host=127.0.0.1 port={server.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = transaction
auth_type = scram-sha-256
auth_file = {base}/userlist.txt
max_client_conn = 500
default_pool_size = {POOL_SIZE}
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = 0
server_lifetime = 3600
server_idle_timeout = 60
query_wait_timeout = 60
logfile = {base}/pgbouncer.log
pidfile = {base}/pgbouncer.pid
log_connections = 0
log_disconnections = 0
"""


@contextlib.contextmanager
def pgbouncer(server: PostgresServer) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction pooling mode in front of ``server``, stopped at the end."""
    binary = find_binary()
    if binary is None:
        raise PgBouncerUnavailable("PgBouncer not found (apt-get install pgbouncer)")
    base = tempfile.mkdtemp(prefix="cmdbgraph-pgbouncer-")
    port = free_port()
    with open(os.path.join(base, "pgbouncer.ini"), "w") as handle:
        handle.write(_config(base, port, server))
    with open(os.path.join(base, "userlist.txt"), "w") as handle:
        handle.write(f'"{server.user}" "{server.password}"\n')
    try:
        run_as = as_postgres(
            base, *(os.path.join(base, name) for name in ("pgbouncer.ini", "userlist.txt"))
        )
    except PostgresUnavailable as refused:
        shutil.rmtree(base, ignore_errors=True)
        raise PgBouncerUnavailable(str(refused)) from None
    os.chmod(base, 0o700)
    log_path = os.path.join(base, "pgbouncer.log")
    process = subprocess.Popen(
        [*run_as, binary, os.path.join(base, "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bouncer = PgBouncer(port=port, server=server, log_path=log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise PgBouncerUnavailable(
                    f"PgBouncer exited ({process.returncode}):\n{bouncer.log()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise PgBouncerUnavailable(
                        f"PgBouncer did not listen within 30 s:\n{bouncer.log()}"
                    ) from None
                time.sleep(0.05)
        yield bouncer
    finally:
        # SIGTERM: PgBouncer closes every connection and exits at once.
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        shutil.rmtree(base, ignore_errors=True)
