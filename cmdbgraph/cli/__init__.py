"""The ``cmdbgraph`` command line: serve, migrate, seed, export the schema."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from cmdbgraph.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    help="cmdbgraph: GraphQL service for CMDB instance associations.",
    no_args_is_help=True,
    # Errors an operator makes are explained in one line (see main); a bug shows a traceback.
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from cmdbgraph import __version__

        typer.echo(f"cmdbgraph {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """cmdbgraph: GraphQL service for CMDB instance associations."""
    if ctx.invoked_subcommand != "serve":
        # A command says what went wrong in one line of its own (see main); the database
        # layer's outage log, written for servers, would only repeat it.
        logging.getLogger("cmdbgraph.db").setLevel(logging.CRITICAL)


db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
openapi_app = typer.Typer(help="The REST shim's OpenAPI document.", no_args_is_help=True)
apps_app = typer.Typer(help="Calling apps (code + secret).", no_args_is_help=True)
users_app = typer.Typer(help="Users (bk_username).", no_args_is_help=True)
tokens_app = typer.Typer(help="Tokens (bk_token) issued to users.", no_args_is_help=True)
grants_app = typer.Typer(help="Permissions: edit on instances.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(schema_app, name="schema")
app.add_typer(openapi_app, name="openapi")
app.add_typer(apps_app, name="apps")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(grants_app, name="grants")
import_app = typer.Typer(help="Bulk import.", no_args_is_help=True)
export_app = typer.Typer(help="Bulk export.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(export_app, name="export")
watch_app = typer.Typer(help="Follow the change stream.", no_args_is_help=True)
app.add_typer(watch_app, name="watch")
queries_app = typer.Typer(
    help="Persisted GraphQL documents: the allow-list and what clients stored.",
    no_args_is_help=True,
)
app.add_typer(queries_app, name="queries")

console = Console(stderr=True, soft_wrap=True)

DatabaseUrl = typer.Option(
    None,
    "--database-url",
    envvar="CMDBGRAPH_DATABASE_URL",
    help="sqlite+aiosqlite:///file.sqlite3 or postgresql+asyncpg://user:pass@host/db",
)


def _settings(database_url: str | None = None, **overrides) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if database_url:
        values["database_url"] = database_url
    return Settings(**values)


def _run(settings: Settings, work: Callable[..., Awaitable[T]], *, create: bool = False) -> T:
    """Run ``work(db)``. Unless ``create``, a SQLite file that does not exist is refused rather
    than created empty."""
    from sqlalchemy.engine import make_url

    from cmdbgraph.db.engine import Database

    url = make_url(settings.database_url)
    path = url.database if url.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not os.path.isdir(os.path.dirname(path) or "."):
        raise NoDatabase(
            f"no directory {os.path.dirname(path)} for the SQLite file {path}: create it, or "
            "point CMDBGRAPH_DATABASE_URL elsewhere"
        )
    if not create and path and path != ":memory:" and not os.path.exists(path):
        raise NoDatabase(
            f"no database at {path}: create it with `cmdbgraph db upgrade` (or `cmdbgraph seed "
            "--demo` for the demo data), or point CMDBGRAPH_DATABASE_URL at yours"
        )

    async def main() -> T:
        db = Database(settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


@db_app.command("upgrade")
def db_upgrade(database_url: str | None = DatabaseUrl) -> None:
    """Apply the pending migrations (idempotent)."""
    from cmdbgraph.db import migrate

    settings = _settings(database_url)

    async def work(db):
        await migrate.upgrade(db)
        return await migrate.current_revision(db)

    revision = _run(settings, work, create=True)
    console.print(f"database at revision [bold]{revision}[/bold] ({_safe_url(settings)})")


@db_app.command("current")
def db_current(database_url: str | None = DatabaseUrl) -> None:
    """Show the schema revision of the database and whether migrations are pending."""
    from cmdbgraph.db import migrate

    settings = _settings(database_url)
    revision = _run(settings, migrate.current_revision)
    head = migrate.head_revision()
    console.print(f"current: {revision or 'none'}  head: {head}")
    if revision != head:
        console.print("migrations pending: run [bold]cmdbgraph db upgrade[/bold]")
        raise typer.Exit(1)


@app.command()
def seed(
    demo: bool = typer.Option(False, "--demo", help="Install the demo dataset."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Install a dataset (migrating first)."""
    if not demo:
        console.print("nothing to seed: pass --demo")
        raise typer.Exit(2)
    from cmdbgraph.db import migrate
    from cmdbgraph.services import demo as demo_data

    async def work(db):
        await migrate.upgrade(db)
        return await demo_data.seed_demo(db)

    wrote = _run(_settings(database_url), work, create=True)
    console.print("demo data installed" if wrote else "demo data already present")


@app.command()
def serve(
    host: str | None = typer.Option(None, envvar="CMDBGRAPH_HOST", help="Default 127.0.0.1."),
    port: int | None = typer.Option(None, envvar="CMDBGRAPH_PORT", help="Default 8000."),
    database_url: str | None = DatabaseUrl,
    workers: int = typer.Option(1, envvar="CMDBGRAPH_WORKERS", min=1, help="Processes."),
    log_level: str | None = typer.Option(None, envvar="CMDBGRAPH_LOG_LEVEL"),
) -> None:
    """Serve GraphQL at /graphql (GraphiQL in a browser) and the BlueKing REST shim."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from cmdbgraph.db import migrate

    # Worker processes build their own settings from the environment.
    for name, value in (
        ("DATABASE_URL", database_url),
        ("HOST", host),
        ("PORT", port),
        ("LOG_LEVEL", log_level),
    ):
        if value is not None:
            os.environ[f"CMDBGRAPH_{name}"] = str(value)
    settings = Settings()
    if _run(settings, migrate.pending):
        console.print(
            "[red]error[/red]: the database schema is behind this version: run "
            f"[bold]cmdbgraph db upgrade[/bold] ({_safe_url(settings)})"
        )
        raise typer.Exit(1)
    _check_port(settings.host, settings.port)
    address = (
        f"cmdbgraph on http://{_url_host(settings.host)}:{settings.port}/graphql "
        f"({_safe_url(settings)}, {workers} worker{'s' if workers > 1 else ''})"
    )
    config = uvicorn.Config(
        "cmdbgraph.app:serve_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
        # The client address is the socket's peer: whose X-Forwarded-For and X-Bkcmdb-*
        # headers to believe is decided by the app from CMDBGRAPH_TRUSTED_PROXIES alone
        # (uvicorn's own handling would believe any of them from 127.0.0.1).
        proxy_headers=False,
        # SIGTERM: stop accepting, let in-flight requests finish (up to this long), then exit.
        # Websockets are closed with 1012 (service restart) at once.
        timeout_graceful_shutdown=30,
        # A websocket message is held to the size of a request body.
        ws_max_size=settings.max_body_bytes,
    )
    if workers > 1:
        sock = config.bind_socket()
        console.print(address)
        Multiprocess(config, sockets=[sock]).run()
        return

    class AnnouncedServer(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                console.print(address)  # listening now, not before

    server = AnnouncedServer(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise typer.Exit(1)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_port(host: str, port: int) -> None:
    """Refuse, in one line, a port this process cannot listen on (before the app starts)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            message = (
                f"port {port} on {host} is in use: stop what uses it, or serve on another "
                "port (--port, CMDBGRAPH_PORT)"
            )
        elif error.errno == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
            message = f"cannot listen on {host}: no such address here (--host, CMDBGRAPH_HOST)"
        else:
            message = f"cannot listen on {host}:{port}: {error.strerror or error}"
        console.print(f"[red]error[/red]: {escape(message)}")
        raise typer.Exit(1) from None
    finally:
        probe.close()


@openapi_app.command("export")
def openapi_export(
    output: str = typer.Option("openapi.json", "--output", "-o", help="'-' for stdout."),
) -> None:
    """Write the REST shim's OpenAPI document (under the default limits)."""
    from cmdbgraph.rest.openapi import export

    document = export()
    if output == "-":
        sys.stdout.write(document)
    else:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(document)
        console.print(f"wrote {output}")


@schema_app.command("export")
def schema_export(
    output: str = typer.Option("schema.graphql", "--output", "-o", help="'-' for stdout."),
) -> None:
    """Write the GraphQL SDL."""
    from cmdbgraph.api import export_sdl

    sdl = export_sdl()
    if output == "-":
        sys.stdout.write(sdl)
    else:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(sdl)
        console.print(f"wrote {output}")


def _manage(database_url: str | None, work: Callable[..., Awaitable[T]]) -> T:
    """Run a management call; upstream-style errors become a one-line message and exit 1."""
    from cmdbgraph.services.errors import EN, CmdbError

    try:
        return _run(_settings(database_url), work)
    except CmdbError as error:
        console.print(f"[red]error {error.code.value}[/red]: {escape(error.message(EN))}")
        raise typer.Exit(1) from None


@apps_app.command("create")
def apps_create(
    app_code: str = typer.Argument(..., help="The bk_app_code callers send."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create an app and print its secret (shown once; only a hash is stored)."""
    from cmdbgraph.services import accounts

    secret = _manage(database_url, lambda db: accounts.create_app(db, app_code))
    console.print(f"app [bold]{app_code}[/bold] created; its secret (shown once):")
    print(secret)


@apps_app.command("list")
def apps_list(database_url: str | None = DatabaseUrl) -> None:
    """List apps."""
    from cmdbgraph.services import accounts

    for info in _manage(database_url, accounts.list_apps):
        state = "active" if info.active else "revoked"
        print(f"{info.app_code}\t{state}\t{info.create_time.isoformat()}")


@apps_app.command("revoke")
def apps_revoke(app_code: str, database_url: str | None = DatabaseUrl) -> None:
    """Revoke an app: its secret stops working at once."""
    from cmdbgraph.services import accounts

    if not _manage(database_url, lambda db: accounts.revoke_app(db, app_code)):
        console.print(f"no app {app_code!r}")
        raise typer.Exit(1)
    console.print(f"app {app_code} revoked")


@users_app.command("create")
def users_create(username: str, database_url: str | None = DatabaseUrl) -> None:
    """Create a user."""
    from cmdbgraph.services import accounts

    _manage(database_url, lambda db: accounts.create_user(db, username))
    console.print(f"user {username} created")


@users_app.command("list")
def users_list(database_url: str | None = DatabaseUrl) -> None:
    """List users."""
    from cmdbgraph.services import accounts

    for username in _manage(database_url, accounts.list_users):
        print(username)


@tokens_app.command("create")
def tokens_create(
    username: str,
    days: float = typer.Option(
        30.0, min=0, help="Lifetime in days; 0 for a token that never expires."
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Issue a bk_token for a user and print it (shown once; only a digest is stored)."""
    from datetime import timedelta

    from cmdbgraph.services import accounts

    ttl = None if days == 0 else timedelta(days=days)
    token = _manage(database_url, lambda db: accounts.create_token(db, username, ttl=ttl))
    console.print(f"token for [bold]{username}[/bold] (shown once):")
    print(token)


@tokens_app.command("revoke")
def tokens_revoke(token: str, database_url: str | None = DatabaseUrl) -> None:
    """Revoke a token."""
    from cmdbgraph.services import accounts

    if not _manage(database_url, lambda db: accounts.revoke_token(db, token)):
        console.print("no such token")
        raise typer.Exit(1)
    console.print("token revoked")


@grants_app.command("add")
def grants_add(
    subject: str = typer.Argument(..., help="A bk_username, or '*' for everyone."),
    bk_obj_id: str = typer.Argument(..., help="A model id, or '*' for every model."),
    bk_inst_id: int = typer.Option(0, "--inst", help="One instance id; 0 for all instances."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Give SUBJECT the edit permission on instances of a model (or on one instance)."""
    from cmdbgraph.services import accounts

    grant = _manage(database_url, lambda db: accounts.add_grant(db, subject, bk_obj_id, bk_inst_id))
    console.print(f"grant {grant.id}: {subject} may edit {_grant_scope(grant)}")


@grants_app.command("list")
def grants_list(
    subject: str | None = typer.Option(None, help="Only this subject's grants."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """List grants."""
    from cmdbgraph.services import accounts

    for grant in _manage(database_url, lambda db: accounts.list_grants(db, subject)):
        print(f"{grant.id}\t{grant.subject}\t{grant.action}\t{_grant_scope(grant)}")


@grants_app.command("remove")
def grants_remove(grant_id: int, database_url: str | None = DatabaseUrl) -> None:
    """Remove a grant by id."""
    from cmdbgraph.services import accounts

    if not _manage(database_url, lambda db: accounts.remove_grant(db, grant_id)):
        console.print(f"no grant {grant_id}")
        raise typer.Exit(1)
    console.print(f"grant {grant_id} removed")


@import_app.command("associations")
def import_associations(
    file: str = typer.Argument(..., help="CSV or JSON lines; '-' for standard input."),
    by_name: bool = typer.Option(
        False, "--by-name", help="Columns bk_obj_asst_id, bk_inst_name, bk_asst_inst_name."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="csv or jsonl (default: by suffix, else by the first line)."
    ),
    errors_file: str | None = typer.Option(
        None,
        "--errors",
        help="Write the failed rows here, in the import's columns plus line, code and message "
        "(CSV, or JSON lines when named .jsonl): fixed, it imports again.",
    ),
    url: str | None = typer.Option(None, "--url", help="Import into a running server instead."),
    app_code: str = typer.Option("", "--app-code", envvar="CMDBGRAPH_APP_CODE"),
    app_secret: str = typer.Option("", "--app-secret", envvar="CMDBGRAPH_APP_SECRET"),
    username: str = typer.Option("", "--username", envvar="CMDBGRAPH_USERNAME"),
    token: str = typer.Option("", "--token", envvar="CMDBGRAPH_TOKEN"),
    progress: str = typer.Option(
        "auto",
        "--progress",
        help="live (an animated line), plain (a line every 5 s, no control codes) or off; "
        "auto: live on a terminal, plain otherwise.",
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Create associations from a file of any size, in order, 200 rows a batch.

    Rows already present are counted, not duplicated: re-running is safe, also after Ctrl-C.
    Exit code 0 when no row failed, 1 otherwise (details in --errors), 2 when the file or
    the options cannot be used, 130 when interrupted.
    """
    import io
    import stat

    from cmdbgraph.cli.progress import ImportProgress
    from cmdbgraph.remote import RemoteError, RemoteTarget
    from cmdbgraph.services import transfer
    from cmdbgraph.services.caller import Caller
    from cmdbgraph.services.errors import EN, CmdbError

    def usage(message: str) -> typer.Exit:
        console.print(f"[red]error[/red]: {escape(message)}", highlight=False)
        return typer.Exit(2)

    if fmt not in (None, "csv", "jsonl"):
        raise usage("--format must be csv or jsonl")
    if progress not in ("auto", "live", "plain", "off"):
        raise usage("--progress must be auto, live, plain or off")
    mode = progress if progress != "auto" else "live" if console.is_terminal else "plain"
    try:
        raw = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115
    except OSError as error:
        raise usage(f"cannot read {file}: {error.strerror}") from None
    if (
        errors_file
        and file != "-"
        and os.path.exists(errors_file)
        and os.path.samefile(file, errors_file)
    ):
        raw.close()
        raise usage("--errors names the file being imported: name another file for the report")
    if errors_file and not os.access(os.path.dirname(os.path.abspath(errors_file)), os.W_OK):
        raw.close()
        raise usage(f"cannot write --errors {errors_file}: no such directory, or not writable")
    info = os.fstat(raw.fileno())
    total = info.st_size if stat.S_ISREG(info.st_mode) else None
    head = raw.peek(64)[:64] if isinstance(raw, io.BufferedReader) else b""
    fmt = transfer.detect_format("" if file == "-" else file, fmt, head)
    errors_fmt = transfer.detect_format(errors_file or "", None, b"{" if fmt == "jsonl" else b"")
    position = raw.tell if total is not None else (lambda: None)
    report = transfer.ImportReport()
    display = ImportProgress(console, total=total, mode=mode)  # type: ignore[arg-type]

    async def work(db):
        target: transfer.Target
        if url:
            target = RemoteTarget(
                url, app_code=app_code, app_secret=app_secret, username=username, token=token
            )
        else:
            from cmdbgraph.db import migrate

            if await migrate.pending(db):
                raise NoDatabase(
                    "the database schema is behind this version: run `cmdbgraph db upgrade`"
                )
            target = transfer.LocalTarget(
                db,
                Caller(
                    username=username or "cmdbgraph-import",
                    app_code="cmdbgraph",
                    enforce_permissions=False,
                ),
            )
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = transfer.RowReader(text, fmt, by_name=by_name, position=position)
        try:
            with display:
                await transfer.import_rows(target, reader, report, progress=display.update)
                display.finish(report, complete=True)
        finally:
            if isinstance(target, RemoteTarget):
                await target.close()

    stopped: Exception | None = None
    interrupted = False
    try:
        # A remote import (--url) needs no local database: none is opened then.
        _run(_settings(database_url), work, create=bool(url))
    except KeyboardInterrupt:
        interrupted = True
        display.finish(report, complete=False)
    except Exception as error:
        stopped = error
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()
    if errors_file and (report.rows or stopped is None):
        try:
            with open(errors_file, "w", encoding="utf-8", newline="") as handle:
                transfer.write_error_report(report.errors, handle, errors_fmt, by_name=by_name)
        except OSError as error:
            console.print(
                f"[red]error[/red]: cannot write {escape(errors_file)}: {error.strerror}",
                highlight=False,
            )
            errors_file = None
    if report.rows or stopped is None:
        _import_summary(report, errors_file, interrupted or stopped is not None)
    if interrupted:
        console.print(
            f"interrupted after line {report.last_line}: run the same command again to finish "
            "(rows already present are skipped)",
            highlight=False,
        )
        raise typer.Exit(130)
    if isinstance(stopped, transfer.ImportFileError | RemoteError | CmdbError):
        message = stopped.message(EN) if isinstance(stopped, CmdbError) else str(stopped)
        console.print(f"[red]import stopped[/red]: {escape(message)}", highlight=False)
        raise typer.Exit(2)
    if stopped is not None:
        raise stopped
    if report.failed:
        raise typer.Exit(1)


def _import_summary(report, errors_file: str | None, partial: bool) -> None:
    from cmdbgraph.cli.progress import counts

    summary = counts(report)
    if partial:
        summary += " (so far)"
    if errors_file and report.failed:
        summary += f"; failed rows in {errors_file}"
    console.print(summary, highlight=False)
    for failed in sorted(report.errors, key=lambda e: e.line)[:5]:
        console.print(
            f"  line {failed.line}: {failed.code} {escape(failed.message)}", highlight=False
        )
    if report.failed > 5 and not errors_file:
        console.print(
            f"  … and {report.failed - 5} more: --errors FILE writes every failed row",
            highlight=False,
        )


@export_app.command("associations")
def export_associations(
    output: str = typer.Option("-", "--output", "-o", help="File, or '-' for stdout."),
    fmt: str | None = typer.Option(None, "--format", help="csv or jsonl (default: by suffix)."),
    bk_obj_asst_id: str | None = typer.Option(None, "--bk-obj-asst-id"),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Write every association in the format import reads: import(export(x)) is x."""
    from cmdbgraph.services import transfer

    fmt = transfer.detect_format(output, fmt)

    async def work(db):
        from cmdbgraph.db import migrate

        # The database first: a failure writes nothing (no header, no truncated file).
        if await migrate.pending(db):
            raise NoDatabase(
                "the database schema is behind this version: run `cmdbgraph db upgrade`"
            )
        handle = sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115, ASYNC230
        try:
            count = 0
            handle.write(transfer.header(fmt))
            async for row in transfer.export_rows(db, bk_obj_asst_id=bk_obj_asst_id):
                handle.write(transfer.format_row(row, fmt))
                count += 1
            return count
        finally:
            if handle is not sys.stdout:
                handle.close()

    count = _run(_settings(database_url), work)
    console.print(f"exported {count} associations")


class WatchStopped(Exception):
    """A watch that cannot start: a cursor of another service, an expired one, a bad time."""


def _moment(text: str):
    """``--since``: unix seconds, or an ISO 8601 time (UTC when it names no zone)."""
    from datetime import UTC, datetime

    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise typer.BadParameter(
            f"{text!r} is no time: unix seconds or ISO 8601 (2026-11-30T04:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@watch_app.command("associations")
def watch_associations(
    from_cursor: str | None = typer.Option(
        None, "--from-cursor", help="Go on after this event (a cursor this command printed)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="The events since this time (unix seconds or ISO 8601)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Only events whose source or target is of this model."
    ),
    count: int | None = typer.Option(
        None, "--count", min=1, help="Stop after this many events (default: never)."
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Print every association created or deleted, one JSON line each ({cursor, event_type,
    detail}), as it commits; without --from-cursor or --since, from now. Resume after a stop
    with --from-cursor and the last line's cursor."""
    import json
    from datetime import UTC, datetime, timedelta

    from cmdbgraph.services import events

    if from_cursor is not None and since is not None:
        raise typer.BadParameter("give --from-cursor or --since, not both")
    settings = _settings(database_url)
    retention = timedelta(days=settings.event_retention_days)
    start = None if since is None else _moment(since)
    position_box: list = []

    async def work(db):
        from cmdbgraph.db import migrate

        if await migrate.pending(db):
            raise NoDatabase(
                "the database schema is behind this version: run `cmdbgraph db upgrade`"
            )
        now = datetime.now(UTC)
        if from_cursor is not None:
            try:
                position = events.decode(from_cursor)
            except events.BadCursor:
                raise WatchStopped(f"{from_cursor!r} is not a cursor of this service") from None
            if events.expired(position, retention, now=now):
                raise WatchStopped(
                    "that cursor is older than the events kept "
                    f"(CMDBGRAPH_EVENT_RETENTION_DAYS={settings.event_retention_days:g}): "
                    "start again with --since"
                )
        elif start is not None:
            if start < now - retention:
                raise WatchStopped(
                    "--since is older than the events kept "
                    f"(CMDBGRAPH_EVENT_RETENTION_DAYS={settings.event_retention_days:g})"
                )
            position = await events.position_at(db, start)
        else:
            position = events.Position(await events.head(db), now)
        position_box.append(position)
        # Where it starts, so that a caller can start there again.
        console.print(f"watching from --from-cursor {events.encode(position)}")
        flt = events.EventFilter(bk_obj_id=model)
        printed = 0
        while count is None or printed < count:
            found = await events.wait_for_events(
                db, flt, position_box[-1].id, limit=events.MAX_EVENTS, wait_seconds=20
            )
            for event in found.events[: None if count is None else count - printed]:
                cursor = events.encode(events.position_of(event))
                line = {
                    "cursor": cursor,
                    "event_type": event.event_type,
                    "detail": events.upstream_detail(event),
                }
                sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
                sys.stdout.flush()
                position_box.append(events.position_of(event))
                printed += 1
        return printed

    try:
        _run(settings, work)
    except KeyboardInterrupt:
        if position_box:
            console.print(f"stopped; go on with --from-cursor {events.encode(position_box[-1])}")
        raise SystemExit(130) from None


async def _schema_is_current(db) -> None:
    from cmdbgraph.db import migrate

    if await migrate.pending(db):
        raise NoDatabase("the database schema is behind this version: run `cmdbgraph db upgrade`")


def _document_problems(schema, settings: Settings, text: str) -> list[str]:
    """What keeps ``text`` from running on ``schema``: its syntax, the schema's validation and
    the document limits of ``settings`` (depth, aliases, tokens); none when it runs."""
    from graphql import GraphQLError, OperationDefinitionNode, parse, specified_rules, validate
    from graphql.validation import NoSchemaIntrospectionCustomRule

    from cmdbgraph.schema.limits import NoNulCharactersRule, alias_rule, depth_rule

    try:
        document = parse(text, max_tokens=settings.max_tokens)
    except GraphQLError as error:
        return [_located(error)]
    if not any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
        return ["the document holds no operation"]
    rules = [
        *specified_rules,
        depth_rule(settings.max_query_depth),
        alias_rule(settings.max_aliases),
        NoNulCharactersRule,
    ]
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return [_located(error) for error in validate(schema._schema, document, rules)]


def _located(error) -> str:
    where = error.locations[0] if error.locations else None
    return f"{where.line}:{where.column}: {error.message}" if where else error.message


def _operation_names(text: str) -> str:
    from graphql import GraphQLError, OperationDefinitionNode, parse

    try:
        document = parse(text, no_location=True)
    except (GraphQLError, RecursionError):
        return "?"
    names = [
        f"{d.operation.value} {d.name.value if d.name else '(anonymous)'}"
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    return ", ".join(names)


def _hash_argument(value: str) -> str:
    from cmdbgraph.services.persisted_queries import is_hash

    if not is_hash(value):
        console.print(
            f"[red]error[/red]: {escape(repr(value))} is not a document's hash: 64 hex digits, as "
            "`cmdbgraph queries list` prints them",
            highlight=False,
        )
        raise typer.Exit(2)
    return value.lower()


@queries_app.command("register")
def queries_register(
    files: list[str] = typer.Argument(
        ..., help=".graphql files, each one document (which may hold several operations)."
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Validate each document against the schema and register it: with
    CMDBGRAPH_PERSISTED_QUERIES=allowlist only registered documents run. Prints each one's
    hash and file, as sha256sum does: the SHA-256 of the file's text, which clients send as
    extensions.persistedQuery.sha256Hash (or send that exact text). Nothing is registered
    unless every file is valid; registering a document again changes nothing."""
    from cmdbgraph.api import build_schema
    from cmdbgraph.services import persisted_queries

    settings = _settings(database_url)
    schema = build_schema(settings)
    documents: list[tuple[str, str]] = []
    problems: list[str] = []
    for file in files:
        try:
            # The bytes as they are (no newline translation): the hash is sha256sum's.
            with open(file, "rb") as handle:
                text = handle.read().decode("utf-8")
        except OSError as error:
            problems.append(f"cannot read {file}: {error.strerror}")
            continue
        except UnicodeDecodeError:
            problems.append(f"{file}: not UTF-8 text")
            continue
        problems.extend(
            f"{file}:{problem}" for problem in _document_problems(schema, settings, text)
        )
        documents.append((file, text))
    if problems:
        for problem in problems:
            console.print(f"[red]error[/red]: {escape(problem)}", highlight=False)
        console.print("nothing registered", highlight=False)
        raise typer.Exit(2)

    async def work(db):
        await _schema_is_current(db)
        return await persisted_queries.register(db, [text for _, text in documents])

    new = _manage(database_url, work)
    for file, text in documents:
        print(f"{persisted_queries.document_hash(text)}  {file}")
    added = sum(1 for is_new in new.values() if is_new)
    console.print(
        f"{added} document{'' if added == 1 else 's'} registered, "
        f"{len(new) - added} already registered",
        highlight=False,
    )


@queries_app.command("list")
def queries_list(
    registered_only: bool = typer.Option(
        False, "--registered", help="Only the registered documents (the allow-list)."
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """List the persisted documents: hash, registered or automatic (stored by a client),
    when, and the operations each holds."""
    from cmdbgraph.services import persisted_queries

    async def work(db):
        await _schema_is_current(db)
        return await persisted_queries.list_queries(db, registered_only=registered_only)

    for query in _manage(database_url, work):
        kind = "registered" if query.registered else "automatic"
        when = query.create_time.isoformat(timespec="seconds")
        print(f"{query.sha256_hash}\t{kind}\t{when}\t{_operation_names(query.document)}")


@queries_app.command("show")
def queries_show(
    sha256_hash: str = typer.Argument(..., metavar="HASH"),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Print the document stored under HASH."""
    from cmdbgraph.services import persisted_queries

    wanted = _hash_argument(sha256_hash)

    async def work(db):
        await _schema_is_current(db)
        return await persisted_queries.get(db, wanted)

    query = _manage(database_url, work)
    if query is None:
        console.print(f"no persisted document {wanted}", highlight=False)
        raise typer.Exit(1)
    sys.stdout.write(query.document if query.document.endswith("\n") else query.document + "\n")


@queries_app.command("remove")
def queries_remove(
    sha256_hash: str = typer.Argument(..., metavar="HASH"),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Remove the document stored under HASH (registered or automatic). Running servers may
    still run it for up to a minute (their caches)."""
    from cmdbgraph.services import persisted_queries

    wanted = _hash_argument(sha256_hash)

    async def work(db):
        await _schema_is_current(db)
        return await persisted_queries.remove(db, wanted)

    if not _manage(database_url, work):
        console.print(f"no persisted document {wanted}", highlight=False)
        raise typer.Exit(1)
    console.print(f"removed {wanted}", highlight=False)


def _grant_scope(grant) -> str:
    if grant.bk_obj_id == "*":
        return "every instance of every model"
    if grant.bk_inst_id == 0:
        return f"every instance of {grant.bk_obj_id}"
    return f"instance {grant.bk_inst_id} of {grant.bk_obj_id}"


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def _explain(error: BaseException) -> tuple[str, int] | None:
    """One line saying what went wrong and what to do, and the exit code (2: usage, 1: failure);
    None for an error that is a bug."""
    from pydantic import ValidationError
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError

    from cmdbgraph.db.engine import DatabaseUnavailable
    from cmdbgraph.services.accounts import AccountError
    from cmdbgraph.services.errors import EN, CmdbError

    if isinstance(error, ValidationError):
        problems = []
        for item in error.errors():
            name = "CMDBGRAPH_" + "_".join(str(part) for part in item["loc"]).upper()
            value = item.get("input")
            # A value shows on the line unless it spans lines or is long (a key's PEM text).
            shown = (
                f"={value}"
                if isinstance(value, str | int | float)
                and "\n" not in str(value)
                and len(str(value)) <= 200
                else ""
            )
            problems.append(f"{name}{shown}: {item['msg'].removeprefix('Value error, ')}")
        return "bad setting: " + "; ".join(problems), 2
    if isinstance(error, ArgumentError | NoSuchModuleError):
        return (
            f"bad database URL ({error}): give sqlite+aiosqlite:///path/to/file.sqlite3 or "
            "postgresql+asyncpg://user:password@host:5432/database",
            2,
        )
    if isinstance(error, DatabaseUnavailable):
        reason = str(error).splitlines()[0] if str(error) else type(error.__cause__).__name__
        if "unable to open database file" in reason:
            return (
                "cannot open the SQLite database file: does its directory exist, and may this "
                "user write there? (CMDBGRAPH_DATABASE_URL)",
                1,
            )
        return (
            f"cannot reach the database ({reason}): is it running, and is "
            "CMDBGRAPH_DATABASE_URL right?",
            1,
        )
    if isinstance(error, OperationalError | ProgrammingError) and (
        "no such table" in str(error) or "does not exist" in str(error)
    ):
        return "the database has no cmdbgraph tables yet: run `cmdbgraph db upgrade` first", 1
    if isinstance(error, NoDatabase | WatchStopped):
        return str(error), 1
    if isinstance(error, CmdbError):
        return f"error {error.code.value}: {error.message(EN)}", 1
    if isinstance(error, AccountError):
        return str(error), 1
    return None


class NoDatabase(Exception):
    """The SQLite file named by the settings does not exist (and the command creates none)."""


def main() -> None:
    try:
        app()
    except Exception as error:
        explained = _explain(error)
        if explained is None:
            raise
        message, code = explained
        console.print(f"[red]error[/red]: {escape(message)}")
        raise SystemExit(code) from None


if __name__ == "__main__":
    main()
