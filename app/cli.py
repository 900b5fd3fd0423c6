"""The `kizuna` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.components import COMPONENTS, load_component, stop_on_signals
from app.logging import configure_logging
from app.settings import Settings, load_settings
from devices.cli import app as devices_app
from simulator.cli import app as simulate_app

console = Console(stderr=True)
app = typer.Typer(
    help="Kizuna: connected products that speak to their owners as friends.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(devices_app, name="devices")
app.add_typer(simulate_app, name="simulate")


@app.command(
    "bench",
    add_help_option=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench(ctx: typer.Context) -> None:
    """Benchmarks that print JSON results."""
    # Imported on use: the benchmarks pull in test clients and every component, which
    # `kizuna version` or `kizuna serve api` should neither wait for nor warn about.
    from bench.cli import app as bench_app

    bench_app(args=ctx.args, prog_name=f"{ctx.find_root().info_name or 'kizuna'} bench")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except ValueError as exc:  # pydantic.ValidationError included
        console.print(f"[red]Settings refused:[/red] {exc}")
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level, settings.log_format)
    return settings


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (embedded database when KIZUNA_DATABASE_URL is unset)."""
    from app.embedded import embedded_postgres
    from store.migrate import upgrade

    settings = _settings()
    if settings.database_url:
        applied = upgrade(settings.database_url)
    else:
        with embedded_postgres(settings.data_dir) as url:
            applied = upgrade(url)
    console.print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m}" for m in applied))


@db_app.command("status")
def db_status() -> None:
    """Show which migrations are applied and which storage variant is in use."""
    from store.db import connect
    from store.migrate import discover_migrations

    settings = _settings()
    if not settings.database_url:
        console.print("[red]KIZUNA_DATABASE_URL is not set[/red]")
        raise typer.Exit(2)
    with connect(settings.database_url) as conn:
        rows = conn.execute("SELECT id, variant, applied_at FROM schema_migrations").fetchall()
    applied = {row["id"]: row for row in rows}
    table = Table("migration", "variant", "applied at")
    for migration in discover_migrations():
        row = applied.get(migration.id)
        table.add_row(
            migration.id,
            row["variant"] if row else "-",
            str(row["applied_at"]) if row else "pending",
        )
    Console().print(table)


@app.command()
def serve(
    component: Annotated[str, typer.Argument(help=f"One of: {', '.join(COMPONENTS)}")],
) -> None:
    """Run one component against external services (KIZUNA_DATABASE_URL, KIZUNA_MQTT_URL)."""
    settings = _settings()
    if settings.uses_embedded_database or settings.uses_embedded_broker:
        console.print(
            "[red]kizuna serve needs KIZUNA_DATABASE_URL and KIZUNA_MQTT_URL;[/red] "
            "use `kizuna demo` for everything embedded on one machine."
        )
        raise typer.Exit(2)
    try:
        runner = load_component(component)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from exc
    runner(settings, stop_on_signals())


@app.command()
def demo(
    devices: Annotated[int, typer.Option(help="How many simulated products.")] = 36,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 60.0,
    verbose: Annotated[bool, typer.Option(help="Show every component's log.")] = False,
) -> None:
    """Start everything embedded, with a simulated fleet, and print where to look."""
    from app.demo import run_demo

    settings = _settings()
    if not verbose:
        configure_logging("warning", settings.log_format)
    run_demo(settings, device_count=devices, speed=speed, verbose=verbose)


@app.command("settings")
def show_settings() -> None:
    """List every setting with its environment variable and current value (secrets hidden)."""
    from app.settings import describe_settings

    table = Table("environment variable", "value", "meaning")
    for variable, value, description in describe_settings(_settings()):
        table.add_row(variable, value, description)
    Console().print(table)


@app.command()
def version() -> None:
    """Print the Kizuna version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("kizuna"))


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
