"""The ``cmdbgraph`` command line: serve, migrate, seed, export the schema."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from rich.console import Console

from cmdbgraph.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    help="cmdbgraph: GraphQL service for CMDB instance associations.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
schema_app = typer.Typer(help="The GraphQL schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(schema_app, name="schema")

console = Console(stderr=True)

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


def _run(settings: Settings, work: Callable[..., Awaitable[T]]) -> T:
    from cmdbgraph.db.engine import Database

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

    revision = _run(settings, work)
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

    wrote = _run(_settings(database_url), work)
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
    console.print(
        f"cmdbgraph on http://{settings.host}:{settings.port}/graphql "
        f"({_safe_url(settings)}, {workers} worker{'s' if workers > 1 else ''})"
    )
    uvicorn.run(
        "cmdbgraph.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=30,
    )


@schema_app.command("export")
def schema_export(
    output: str = typer.Option("schema.graphql", "--output", "-o", help="'-' for stdout."),
) -> None:
    """Write the GraphQL SDL."""
    from cmdbgraph.schema.build import export_sdl

    sdl = export_sdl()
    if output == "-":
        sys.stdout.write(sdl)
    else:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(sdl)
        console.print(f"wrote {output}")


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
