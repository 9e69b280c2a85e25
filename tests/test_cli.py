"""The command line as an operator meets it: every mistake answers one line saying what is wrong
and what to do, with exit code 2 (usage) or 1 (failure), never a traceback. Each test runs the
real command in a subprocess."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.servers import live_server

UNREACHABLE = "postgresql+asyncpg://x@127.0.0.1:1/db"


def cmdbgraph(
    *args: str, cwd: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CMDBGRAPH_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "cmdbgraph.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess, code: int) -> str:
    """The single line a failed command printed (on stderr), checked."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("db", "upgrade"),
        ("db", "current"),
        ("seed", "--demo"),
        ("apps", "list"),
        ("users", "create", "alice"),
        ("export", "associations"),
    ],
)
@pytest.mark.parametrize("url", [UNREACHABLE, "postgres://x@127.0.0.1:1/db"])
def test_an_unreachable_database_is_one_line(tmp_path, args, url):
    line = one_line(cmdbgraph(*args, cwd=tmp_path, CMDBGRAPH_DATABASE_URL=url), 1)
    assert "cannot reach the database" in line and "CMDBGRAPH_DATABASE_URL" in line
    assert not list(tmp_path.iterdir()), "nothing is written"


def test_the_common_url_spellings_work(tmp_path):
    done = cmdbgraph("db", "upgrade", cwd=tmp_path, CMDBGRAPH_DATABASE_URL="sqlite:///x.sqlite3")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x.sqlite3").is_file()
    assert "sqlite+aiosqlite:///x.sqlite3" in done.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CMDBGRAPH_DATABASE_URL": "nonsense"}, "CMDBGRAPH_DATABASE_URL"),
        ({"CMDBGRAPH_DATABASE_URL": "mysql://x/y"}, "CMDBGRAPH_DATABASE_URL"),
        ({"CMDBGRAPH_PORT": "abc"}, "CMDBGRAPH_PORT"),
        ({"CMDBGRAPH_AUTH": "maybe"}, "CMDBGRAPH_AUTH"),
        ({"CMDBGRAPH_MAX_BATCH_SIZE": "500"}, "CMDBGRAPH_MAX_BATCH_SIZE"),
        ({"CMDBGRAPH_LOG_LEVEL": "verbose"}, "CMDBGRAPH_LOG_LEVEL"),
        ({"CMDBGRAPH_TRUSTED_PROXIES": "not-an-address"}, "CMDBGRAPH_TRUSTED_PROXIES"),
        ({"CMDBGRAPH_APIGW_PUBLIC_KEY": "no-such-file.pem"}, "CMDBGRAPH_APIGW_PUBLIC_KEY"),
        (
            {"CMDBGRAPH_APIGW_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nx"},
            "CMDBGRAPH_APIGW_PUBLIC_KEY",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path, env, named):
    line = one_line(cmdbgraph("db", "current", cwd=tmp_path, **env), 2)
    assert line.startswith(f"error: bad setting: {named}")


def test_list_settings_take_commas_as_well_as_json(tmp_path):
    for value in ("http://localhost:3000,https://ui.example", '["http://localhost:3000"]'):
        done = cmdbgraph("db", "upgrade", cwd=tmp_path, CMDBGRAPH_CORS_ORIGINS=value)
        assert done.returncode == 0, done.stderr


def test_a_sqlite_file_in_a_missing_directory_is_one_line(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.sqlite3'}"
    line = one_line(cmdbgraph("db", "upgrade", cwd=tmp_path, CMDBGRAPH_DATABASE_URL=url), 1)
    assert f"no directory {tmp_path / 'missing'}" in line


@pytest.mark.parametrize(
    "args",
    [
        ("apps", "list"),
        ("users", "create", "alice"),
        ("grants", "list"),
        ("apps", "revoke", "esb_test"),
        ("export", "associations"),
        ("db", "current"),
    ],
)
def test_commands_before_db_upgrade_say_to_run_it(tmp_path, args):
    line = one_line(cmdbgraph(*args, cwd=tmp_path), 1)
    assert "cmdbgraph db upgrade" in line
    assert not (tmp_path / "cmdbgraph.sqlite3").exists(), "no empty database is left behind"


def test_version(tmp_path):
    done = cmdbgraph("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("cmdbgraph ")


# --- accounts ---------------------------------------------------------------------------------


@pytest.fixture
def demo_dir(tmp_path) -> Path:
    done = cmdbgraph("seed", "--demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("tokens", "create", "admin", "--days", "-1"), 2, "--days"),
        (("tokens", "create", "nobody"), 1, "error: no user nobody"),
        (("grants", "add", "admin", "nomodel"), 1, "error: no model nomodel"),
        (("grants", "add", "alice", "host"), 1, "error: no user alice"),
        (("grants", "add", "admin", "host", "--inst", "11"), 1, "error: no instance 11"),
        (("users", "create", "admin"), 1, "error: user admin exists"),
        (("apps", "create", "esb_test"), 1, "error: app esb_test exists"),
    ],
)
def test_account_commands_refuse_nonsense(demo_dir, args, code, says):
    done = cmdbgraph(*args, cwd=demo_dir)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    if code == 1:
        one_line(done, 1)


# --- serve ------------------------------------------------------------------------------------


def test_serve_on_a_busy_port_says_so_before_starting(demo_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cmdbgraph("serve", "--port", str(port), cwd=demo_dir)
    line = one_line(done, 1)
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port" in line
    assert "cmdbgraph on http" not in done.stdout + done.stderr
    assert "startup complete" not in done.stderr.lower()


def test_serve_before_db_upgrade_leaves_no_file(tmp_path):
    line = one_line(cmdbgraph("serve", "--port", str(free_port()), cwd=tmp_path), 1)
    assert "cmdbgraph db upgrade" in line
    assert list(tmp_path.iterdir()) == []


def serve_output(demo_dir: Path, *args: str) -> tuple[str, str]:
    """What ``cmdbgraph serve`` prints, run in ``demo_dir`` with the default settings until it
    answers, then stopped; and where it answered."""
    with live_server(None, demo_dir / "serve.log", args=args, cwd=demo_dir) as server:
        url = server.url
    return server.log(), url


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_prints_its_address_once_listening(demo_dir, workers):
    stderr, url = serve_output(demo_dir, "--workers", workers)
    assert f"cmdbgraph on {url}/graphql" in stderr
    assert f"{workers} worker" in stderr


def test_the_demo_warning_names_the_command_as_it_runs_here(demo_dir):
    """After scripts/demo.sh, `cmdbgraph` is not on the PATH: the server says where it is."""
    stderr, _ = serve_output(demo_dir)
    named = re.search(r"`(\S*cmdbgraph) apps revoke esb_test`", stderr)
    assert named, stderr
    # The command as this server's operator can run it: on the PATH, or this path.
    runnable = named.group(1)
    assert runnable == "cmdbgraph" or os.access(demo_dir / runnable, os.X_OK)
