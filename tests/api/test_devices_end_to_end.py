"""A device provisioned through the API lives on the real Mosquitto (dynsec) with ingest running.

It connects with its own credential, its telemetry shows in its twin, it receives a command
sent through the API and its ack moves the command to `acked`; rotation cuts it off.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.config import ApiConfig
from app.settings import Settings
from devices.broker_setup import ensure_platform_services
from devices.catalog_sync import sync_product_models
from devices.config import DevicesConfig
from devices.dynsec import DynsecAdmin
from devices.protocol import (
    Channel,
    CommandAck,
    CommandRequest,
    DeviceStatus,
    Reading,
    TelemetryBatch,
    device_topic,
    json_payload,
)
from ingest.config import IngestConfig
from tests.api.conftest import FAST_API_CONFIG, TestUser
from tests.conftest import make_test_settings
from tests.devices import conftest as devices_fixtures
from tests.devices.conftest import DynsecBroker
from tests.devices.mqtt_helpers import ConnectRefused
from tests.devices.mqtt_helpers import TestClient as MqttClient
from tests.ingest.conftest import wait_until

API = "/api/v1"


# The private dynsec Mosquitto of the devices tests, used here as a fixture too.
dynsec_broker = devices_fixtures.dynsec_broker


@pytest.fixture
def service_passwords(dynsec_broker: DynsecBroker, topic_prefix: str) -> dict[str, str]:
    """Broker clients for the API's downlink and for ingest, each with its own role."""
    passwords = {"devices": secrets.token_urlsafe(16), "ingest": secrets.token_urlsafe(16)}
    with DynsecAdmin(dynsec_broker.admin_endpoint) as admin:
        ensure_platform_services(admin, topic_prefix, passwords)
    return passwords


def _settings(
    database_url: str, broker: DynsecBroker, user: str, password: str, prefix: str, tmp: Path
) -> Settings:
    return make_test_settings(
        database_url,
        f"mqtt://{user}:{password}@{broker.host}:{broker.port}",
        prefix,
        tmp,
        api=ApiConfig(**FAST_API_CONFIG),
        ingest=IngestConfig(client_id=f"ingest-{prefix}"),
        devices=DevicesConfig(
            broker_auth="mosquitto-dynsec",
            dynsec_admin_username=broker.admin_username,
            dynsec_admin_password=broker.admin_password,
        ),
    )


@pytest.fixture
def api_settings(
    database_url: str,
    dynsec_broker: DynsecBroker,
    service_passwords: dict[str, str],
    topic_prefix: str,
    tmp_path: Path,
) -> Settings:
    """The API connects to the dynsec broker as kizuna-devices."""
    return _settings(
        database_url,
        dynsec_broker,
        "kizuna-devices",
        service_passwords["devices"],
        topic_prefix,
        tmp_path,
    )


@pytest.fixture
def running_ingest(
    database_url: str,
    dynsec_broker: DynsecBroker,
    service_passwords: dict[str, str],
    topic_prefix: str,
    tmp_path: Path,
) -> Iterator[None]:
    """The real ingest component, connected as kizuna-ingest, in a thread."""
    from ingest.main import run

    settings = _settings(
        database_url,
        dynsec_broker,
        "kizuna-ingest",
        service_passwords["ingest"],
        topic_prefix,
        tmp_path,
    )
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(settings, stop), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=15)


def test_device_provisioned_through_the_api_works_end_to_end(
    api: TestClient,
    operator: TestUser,
    make_user: Any,
    db: Any,
    dynsec_broker: DynsecBroker,
    running_ingest: None,
    topic_prefix: str,
) -> None:
    sync_product_models(db)
    created = api.post(
        f"{API}/devices", headers=operator.headers, json={"serial": "E2E-1", "model_id": "ev"}
    )
    uid = created.json()["uid"]
    customer = api.post(
        f"{API}/customers", headers=operator.headers, json={"name": "Ren", "email": "ren@ex.jp"}
    ).json()
    api.put(
        f"{API}/devices/{uid}/owner",
        headers=operator.headers,
        json={"customer_public_id": customer["public_id"]},
    )
    owner_row = db.execute(
        "SELECT id FROM customers WHERE public_id = %s", (customer["public_id"],)
    ).fetchone()
    owner = make_user("customer", customer_id=owner_row["id"])
    issued = api.post(f"{API}/devices/{uid}/credentials", headers=operator.headers)
    assert issued.status_code == 201, issued.text
    password = issued.json()["password"]

    device = MqttClient(dynsec_broker.host, dynsec_broker.port, uid, password, uid)
    try:
        assert device.subscribe(f"{topic_prefix}/v1/devices/{uid}/commands/+")
        now = datetime.now(UTC)
        status = DeviceStatus(state="online", ts=now, firmware="3.2.1")
        device.publish(device_topic(topic_prefix, uid, Channel.STATUS), json_payload(status))
        batch = TelemetryBatch(readings=[Reading(seq=1, ts=now, metrics={"soc_pct": 64.5})])
        device.publish(device_topic(topic_prefix, uid, Channel.TELEMETRY), json_payload(batch))

        def twin() -> dict[str, Any]:
            return api.get(f"{API}/devices/{uid}/twin", headers=owner.headers).json()

        shown = wait_until(lambda: twin()["reported"].get("soc_pct") and twin())
        assert shown["reported"]["soc_pct"]["v"] == 64.5
        assert shown["connection"] == "online" and shown["online"] is True

        sent = api.post(
            f"{API}/devices/{uid}/commands", headers=owner.headers, json={"name": "lock"}
        )
        assert sent.status_code == 202, sent.text
        request = CommandRequest.model_validate_json(device.wait_for(1)[0][1])
        assert request.command_id == sent.json()["command_id"]
        ack = CommandAck(command_id=request.command_id, status="done", ts=datetime.now(UTC))
        device.publish(device_topic(topic_prefix, uid, Channel.COMMAND_ACKS), json_payload(ack))
        path = f"{API}/devices/{uid}/commands/{request.command_id}"
        wait_until(lambda: api.get(path, headers=owner.headers).json()["status"] == "acked")

        rotated = api.post(f"{API}/devices/{uid}/credentials/rotate", headers=operator.headers)
        assert rotated.status_code == 200
        assert device.disconnected.wait(5)
    finally:
        device.close()
    with pytest.raises(ConnectRefused):
        MqttClient(dynsec_broker.host, dynsec_broker.port, uid, password, uid)
    new_password = rotated.json()["password"]
    MqttClient(dynsec_broker.host, dynsec_broker.port, uid, new_password, uid).close()
    assert (
        api.delete(f"{API}/devices/{uid}/credentials", headers=operator.headers).status_code == 204
    )
    with pytest.raises(ConnectRefused):
        MqttClient(dynsec_broker.host, dynsec_broker.port, uid, new_password, uid)
