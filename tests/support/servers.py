"""Real ``cmdbgraph serve`` processes, started the way a user starts them.

Every test (and the benchmark) that needs a server process uses ``live_server``; a test that
expects ``serve`` to refuse to start uses ``serve_to_exit``. Both build the command and the
environment in one place (``serve_command``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.ports import free_port


class ServerFailed(AssertionError):
    """The server exited or did not answer in time; the message holds its output."""


def serve_command(
    database_url: str | None,
    port: int,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    command: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """The argv and the environment of ``cmdbgraph serve`` on ``database_url``, 127.0.0.1:``port``,
    log level warning. ``env`` adds or overrides settings, ``args`` adds options to ``serve``,
    ``command`` runs before it (e.g. ``setpriv ...``). With no ``database_url``, the database is
    the default one of the working directory and no other ``CMDBGRAPH_`` setting of this
    environment is passed on: the server as a newcomer starts it."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if database_url is not None or not name.startswith("CMDBGRAPH_")
    }
    environment = {
        **inherited,
        **({} if database_url is None else {"CMDBGRAPH_DATABASE_URL": database_url}),
        "CMDBGRAPH_LOG_LEVEL": "warning",
        "CMDBGRAPH_HOST": "127.0.0.1",
        "CMDBGRAPH_PORT": str(port),
        **(env or {}),
    }
    return [*command, sys.executable, "-m", "cmdbgraph.cli", "serve", *args], environment


@dataclass
class LiveServer:
    """A real ``cmdbgraph serve`` process and where it answers."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def rss_kb(self) -> int:
        """The process's resident memory, from /proc."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")

    def log(self) -> str:
        """What the process wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def live_server(
    database_url: str | None,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    command: tuple[str, ...] = (),
    cwd: Path | None = None,
    startup_timeout: float = 60,
) -> Iterator[LiveServer]:
    """A real ``cmdbgraph serve`` process on ``database_url`` (127.0.0.1, a free port), run in
    ``cwd``, stopped at the end (SIGTERM, then SIGKILL after 15 s); its output goes to
    ``log_path``. ``database_url``, ``env``, ``args`` and ``command`` as for ``serve_command``.
    Raises ``ServerFailed`` when the process exits or does not answer ``/healthz`` within
    ``startup_timeout`` seconds."""
    port = free_port()
    argv, environment = serve_command(database_url, port, env=env, args=args, command=command)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            argv, env=environment, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if server.poll() is not None:
                raise ServerFailed(
                    f"the server exited ({server.returncode}):\n{log_path.read_text()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise ServerFailed(f"the server did not start in time:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield LiveServer(base_url, server, log_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


@contextlib.contextmanager
def uvicorn_server(database_url: str, log_path: Path, **options) -> Iterator[str]:
    """Base URL of a ``live_server`` (same arguments)."""
    with live_server(database_url, log_path, **options) as server:
        yield server.url


def serve_to_exit(
    database_url: str,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Run ``cmdbgraph serve`` as ``live_server`` does, for a test that expects it to refuse to
    start: its exit status, and its stdout and stderr apart, as text."""
    argv, environment = serve_command(database_url, free_port(), env=env, args=args)
    return subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=timeout)
