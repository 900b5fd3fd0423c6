"""`kizuna devices ...` commands against the test database."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from devices.cli import app
from tests.devices.conftest import DynsecBroker, new_device
from tests.devices.mqtt_helpers import TestClient as MqttTestClient


def _last_json(output: str) -> Any:
    """The JSON result line (logs may come before it)."""
    return json.loads(output.strip().splitlines()[-1])


def test_sync_import_and_sweep_from_the_command_line(
    database_url: str, db: Any, tmp_path: Path
) -> None:
    runner = CliRunner()
    env = {"KIZUNA_DATABASE_URL": database_url, "KIZUNA_ENV": "development"}
    synced = runner.invoke(app, ["sync-models"], env=env)
    assert synced.exit_code == 0, synced.output
    assert "ev" in _last_json(synced.output)["product_models"]
    good = tmp_path / "good.csv"
    good.write_text("serial,model_id\nC-1,ev\nC-2,ev\n", encoding="utf-8")
    imported = runner.invoke(app, ["import", str(good)], env=env)
    assert imported.exit_code == 0 and _last_json(imported.output)["imported"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("serial,model_id\nC-3,ev\nC-1,ev\n", encoding="utf-8")
    refused = runner.invoke(app, ["import", str(bad)], env=env)
    assert refused.exit_code == 1 and "line 3: serial already registered" in refused.output
    assert db.execute("SELECT count(*) AS n FROM devices").fetchone()["n"] == 2
    swept = runner.invoke(app, ["expire-commands"], env=env)
    assert swept.exit_code == 0 and _last_json(swept.output) == {"expired": 0}


def test_broker_services_and_provisioning_from_the_command_line(
    database_url: str,
    registry: Any,
    dynsec_broker: DynsecBroker,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    runner = CliRunner()
    env = {
        "KIZUNA_DATABASE_URL": database_url,
        "KIZUNA_ENV": "development",
        "KIZUNA_MQTT_URL": dynsec_broker.url,
        "KIZUNA_MQTT_TOPIC_PREFIX": topic_prefix,
        "KIZUNA_DEVICES__BROKER_AUTH": "mosquitto-dynsec",
        "KIZUNA_DEVICES__DYNSEC_ADMIN_USERNAME": dynsec_broker.admin_username,
        "KIZUNA_DEVICES__DYNSEC_ADMIN_PASSWORD": dynsec_broker.admin_password,
        "KIZUNA_MQTT_NOTIFY_PASSWORD": "notify-secret-for-this-test",
    }
    services = runner.invoke(app, ["broker-services"], env=env)
    assert services.exit_code == 0, services.output
    assert _last_json(services.output) == {"services": ["kizuna-notify"]}
    uids = [new_device(registry, "refrigerator") for _ in range(2)]
    out = tmp_path / "credentials.csv"
    issued = runner.invoke(app, ["provision", "--out", str(out)], env=env)
    assert issued.exit_code == 0, issued.output
    assert out.stat().st_mode & 0o077 == 0
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["uid"] for r in rows) == sorted(uids)
    passwords = [r["password"] for r in rows]
    assert len(set(passwords)) == len(passwords) and min(map(len, passwords)) >= 40
    first = rows[0]
    MqttTestClient(
        dynsec_broker.host, dynsec_broker.port, first["uid"], first["password"], first["uid"]
    ).close()
    again = runner.invoke(app, ["provision", "--out", str(tmp_path / "again.csv")], env=env)
    assert _last_json(again.output)["provisioned"] == 0
