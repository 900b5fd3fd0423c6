"""`kizuna devices ...`: product models, bulk import, broker setup, credentials, sweeps."""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from app.settings import Settings, load_settings

app = typer.Typer(help="Device registry, credentials and broker setup.", no_args_is_help=True)

PASSWORD_ENV = "KIZUNA_MQTT_{service}_PASSWORD"  # noqa: S105  (a variable name)


def _settings() -> Settings:
    return load_settings()


def _database(settings: Settings) -> str:
    if not settings.database_url:
        typer.echo("KIZUNA_DATABASE_URL is not set", err=True)
        raise typer.Exit(2)
    return settings.database_url


@app.command("sync-models")
def sync_models(
    extra_dir: Annotated[Path | None, typer.Option(help="Folder of extra *.yaml models.")] = None,
) -> None:
    """Load shipped (and extra) product models into the database."""
    from devices.catalog_sync import sync_product_models
    from store.db import connect

    settings = _settings()
    with connect(_database(settings), settings.store) as conn:
        ids = sync_product_models(conn, extra_dir or settings.devices.extra_models_dir)
        conn.commit()
    typer.echo(json.dumps({"product_models": ids}))


@app.command("import")
def import_csv(
    file: Annotated[Path, typer.Argument(help="CSV: serial,model_id[,uid,...]")],
) -> None:
    """Import devices from CSV, all or nothing; bad rows are listed by line."""
    from devices.bulk_import import import_devices_csv
    from devices.errors import ImportRejected, InvalidRequest
    from store.db import connect

    settings = _settings()
    with connect(_database(settings), settings.store) as conn, file.open(newline="") as text:
        try:
            report = import_devices_csv(conn, text)
        except ImportRejected as exc:
            for problem in exc.problems:
                typer.echo(f"line {problem.line}: {problem.reason}", err=True)
            typer.echo(f"{exc.total_bad} bad row(s); nothing was imported", err=True)
            raise typer.Exit(1) from exc
        except InvalidRequest as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        conn.commit()
    typer.echo(report.model_dump_json())


@app.command("broker-services")
def broker_services() -> None:
    """Create/reset the broker clients of platform services whose password env var is set.

    Reads KIZUNA_MQTT_INGEST_PASSWORD, KIZUNA_MQTT_DEVICES_PASSWORD and
    KIZUNA_MQTT_NOTIFY_PASSWORD; each service gets client `kizuna-<service>` and its own role.
    """
    from app.broker_url import MqttEndpoint
    from devices.broker_setup import ensure_platform_services
    from devices.dynsec import PLATFORM_SERVICES, DynsecAdmin

    settings = _settings()
    passwords = {
        s: os.environ[PASSWORD_ENV.format(service=s.upper())]
        for s in PLATFORM_SERVICES
        if os.environ.get(PASSWORD_ENV.format(service=s.upper()))
    }
    if not settings.mqtt_url or not passwords:
        typer.echo(
            "needs KIZUNA_MQTT_URL and at least one KIZUNA_MQTT_<SERVICE>_PASSWORD", err=True
        )
        raise typer.Exit(2)
    broker = MqttEndpoint.from_url(settings.mqtt_url)
    admin = MqttEndpoint(
        broker.host,
        broker.port,
        settings.devices.dynsec_admin_username,
        settings.devices.dynsec_admin_password,
        broker.tls,
    )
    with DynsecAdmin(admin) as connected:
        users = ensure_platform_services(connected, settings.mqtt_topic_prefix, passwords)
    typer.echo(json.dumps({"services": users}))


@app.command("provision")
def provision_unprovisioned(
    out: Annotated[Path, typer.Option(help="CSV to write uid,password,model (mode 0600).")],
    limit: Annotated[int, typer.Option(help="At most this many devices.")] = 1000,
) -> None:
    """Issue credentials to devices that have none; the secrets go to `out` only."""
    from devices import credentials
    from store.db import connect

    settings = _settings()
    with connect(_database(settings), settings.store) as conn:
        rows = conn.execute(
            """
            SELECT d.uid, d.model_id FROM devices d
            WHERE NOT EXISTS (SELECT 1 FROM device_credentials c
                              WHERE c.device_id = d.id AND c.revoked_at IS NULL)
            ORDER BY d.uid LIMIT %s
            """,
            (limit,),
        ).fetchall()
        out.touch(mode=0o600, exist_ok=False)
        with credentials.credential_broker(settings) as broker, out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["uid", "password", "model"])
            for row in rows:
                issued = credentials.provision(conn, broker, settings.mqtt_topic_prefix, row["uid"])
                writer.writerow([row["uid"], issued.password, row["model_id"]])
    typer.echo(json.dumps({"provisioned": len(rows), "file": str(out)}))


@app.command("expire-commands")
def expire() -> None:
    """Mark unanswered commands past their expiry as expired (the scheduler does this too)."""
    from devices.commands import expire_commands
    from store.db import connect

    settings = _settings()
    with connect(_database(settings), settings.store) as conn:
        count = expire_commands(conn, datetime.now(UTC))
        conn.commit()
    typer.echo(json.dumps({"expired": count}))
