"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks.

Finds the server binaries (PATH, then Debian's /usr/lib/postgresql/<version>/bin), initializes a
cluster in a temporary directory, starts it on a free port and stops it at the end. When run as
root it runs the server as the ``postgres`` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support.ports import free_port


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    return candidates[-1] if candidates else None


def require_binaries() -> None:
    """Skip the calling test without PostgreSQL's binaries; fail instead under CI, where the
    test command installed them."""
    import pytest

    if find_bindir() is None:
        message = "PostgreSQL binaries not found; the test command installs them"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class PostgresServer:
    port: int
    user: str
    password: str
    # How to stop and start it again (a test of a database outage does).
    control: list[str] = field(default_factory=list, repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)

    def stop(self) -> None:
        subprocess.run(
            [*self.control, "-m", "immediate", "-w", "stop"],
            check=True,
            capture_output=True,
            env=self.env,
        )

    def start(self) -> None:
        subprocess.run(
            [*self.control, "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            env=self.env,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"


def as_postgres(*paths: str) -> list[str]:
    """Run as root (which PostgreSQL and PgBouncer refuse): ``paths`` given to the ``postgres``
    user, and the command prefix that runs a program as that user. Otherwise nothing to do:
    []."""
    if os.geteuid() != 0:
        return []
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable("running as root but there is no 'postgres' user") from None
    for path in paths:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups", "--"]


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found (apt-get install postgresql)"
        )
    base = tempfile.mkdtemp(prefix="cmdbgraph-pg-")
    run_as = as_postgres(base)
    os.chmod(base, 0o700)
    datadir = os.path.join(base, "data")
    password = "cmdbgraph"
    pwfile = os.path.join(base, "pw")
    with open(pwfile, "w") as handle:
        handle.write(password)
    as_postgres(pwfile)
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        [
            *run_as,
            f"{bindir}/initdb",
            "-D",
            datadir,
            "-U",
            "cmdbgraph",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        "-c max_connections=200 -c shared_buffers=128MB"
    )
    control = [
        *run_as,
        f"{bindir}/pg_ctl",
        "-D",
        datadir,
        "-o",
        options,
        "-l",
        os.path.join(base, "log"),
    ]
    server = PostgresServer(
        port=port, user="cmdbgraph", password=password, control=control, env=env
    )
    server.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
