"""A provisioned device on the real Mosquitto with dynsec: connect, command, ack, rotate, revoke."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app.broker_url import MqttEndpoint
from app.settings import Settings
from devices import commands, credentials
from devices.broker_setup import ensure_platform_services
from devices.config import DevicesConfig
from devices.downlink import MqttDownlink
from devices.dynsec import DynsecAdmin
from devices.errors import BrokerError, Conflict
from devices.models import CommandCreate
from devices.protocol import Channel, CommandAck, CommandRequest, device_topic, json_payload
from devices.uplink import apply_command_ack
from tests.conftest import make_test_settings
from tests.devices.conftest import DynsecBroker, new_device
from tests.devices.mqtt_helpers import ConnectRefused, TestClient


@pytest.fixture
def dynsec_settings(
    database_url: str, dynsec_broker: DynsecBroker, topic_prefix: str, tmp_path: Path
) -> Settings:
    """Settings pointing the devices package at the dynsec broker as its administrator."""
    devices = DevicesConfig(
        broker_auth="mosquitto-dynsec",
        dynsec_admin_username=dynsec_broker.admin_username,
        dynsec_admin_password=dynsec_broker.admin_password,
    )
    return make_test_settings(
        database_url, dynsec_broker.url, topic_prefix, tmp_path, devices=devices
    )


@pytest.fixture
def platform(dynsec_broker: DynsecBroker, topic_prefix: str) -> Iterator[dict[str, TestClient]]:
    """The API's downlink and an ingest listener, each with its own broker role."""
    passwords = {"devices": secrets.token_urlsafe(16), "ingest": secrets.token_urlsafe(16)}
    with DynsecAdmin(dynsec_broker.admin_endpoint) as admin:
        ensure_platform_services(admin, topic_prefix, passwords)
    ingest = TestClient(
        dynsec_broker.host, dynsec_broker.port, "kizuna-ingest", passwords["ingest"], "ing"
    )
    assert ingest.subscribe(f"{topic_prefix}/v1/devices/+/command-acks")
    endpoint = MqttEndpoint(
        dynsec_broker.host, dynsec_broker.port, "kizuna-devices", passwords["devices"]
    )
    downlink = MqttDownlink(endpoint).open()
    yield {"ingest": ingest, "downlink": downlink}  # type: ignore[dict-item]
    downlink.close()
    ingest.close()


def test_provisioned_device_receives_a_command_and_its_ack_lands(
    registry: Any,
    dynsec_settings: Settings,
    dynsec_broker: DynsecBroker,
    platform: dict[str, Any],
    topic_prefix: str,
) -> None:
    uid = new_device(registry, "washing_machine")
    with credentials.credential_broker(dynsec_settings) as broker:
        issued = credentials.provision(registry, broker, topic_prefix, uid)
        with pytest.raises(Conflict):
            credentials.provision(registry, broker, topic_prefix, uid)
    stored = registry.execute("SELECT secret_hash FROM device_credentials").fetchone()
    assert issued.password not in stored["secret_hash"]
    assert stored["secret_hash"].startswith("$argon2id$")
    assert credentials.verify_secret(registry, uid, issued.password)

    device = TestClient(dynsec_broker.host, dynsec_broker.port, uid, issued.password, uid)
    try:
        assert device.subscribe(f"{topic_prefix}/v1/devices/{uid}/commands/+")
        sent = commands.send_command(
            registry,
            platform["downlink"],
            topic_prefix,
            uid,
            CommandCreate(name="pause"),
            datetime.now(UTC),
        )
        _topic, payload, _ = device.wait_for(1)[0]
        request = CommandRequest.model_validate_json(payload)
        assert request.command_id == sent.command_id
        ack = CommandAck(command_id=request.command_id, status="done", ts=datetime.now(UTC))
        device.publish(device_topic(topic_prefix, uid, Channel.COMMAND_ACKS), json_payload(ack))
        ack_topic, ack_payload, _ = platform["ingest"].wait_for(1)[0]
    finally:
        device.close()
    # What ingest does with the ack it received (its own tests cover the MQTT side).
    device_id = registry.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()["id"]
    assert ack_topic == device_topic(topic_prefix, uid, Channel.COMMAND_ACKS)
    apply_command_ack(
        registry, device_id, CommandAck.model_validate_json(ack_payload), datetime.now(UTC)
    )
    assert commands.get_command(registry, uid, sent.command_id).status == "acked"


def test_rotation_and_revocation_through_the_service(
    registry: Any, dynsec_settings: Settings, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    uid = new_device(registry, "refrigerator")
    with credentials.credential_broker(dynsec_settings) as broker:
        first = credentials.provision(registry, broker, topic_prefix, uid)
        connected = TestClient(dynsec_broker.host, dynsec_broker.port, uid, first.password, uid)
        second = credentials.rotate(registry, broker, topic_prefix, uid)
        assert connected.disconnected.wait(5)
        connected.close()
        with pytest.raises(ConnectRefused):
            TestClient(dynsec_broker.host, dynsec_broker.port, uid, first.password, uid)
        assert not credentials.verify_secret(registry, uid, first.password)
        current = TestClient(dynsec_broker.host, dynsec_broker.port, uid, second.password, uid)
        credentials.revoke(registry, broker, uid)
        assert current.disconnected.wait(5)
        current.close()
    with pytest.raises(ConnectRefused):
        TestClient(dynsec_broker.host, dynsec_broker.port, uid, second.password, uid)
    assert not credentials.has_credential(registry, uid)


class DownBroker:
    """A broker administrator that cannot reach the broker (the injected seam)."""

    def create_device(self, prefix: str, uid: str, password: str) -> None:
        raise BrokerError("broker unreachable")

    def set_password(self, username: str, password: str) -> None:
        raise BrokerError("broker unreachable")

    def delete_device(self, uid: str) -> None:
        raise BrokerError("broker unreachable")


def test_a_broker_that_does_not_confirm_leaves_the_registry_unchanged(
    registry: Any, dynsec_settings: Settings, topic_prefix: str
) -> None:
    uid = new_device(registry, "ev")
    with pytest.raises(BrokerError):
        credentials.provision(registry, DownBroker(), topic_prefix, uid)
    assert not credentials.has_credential(registry, uid)
    with credentials.credential_broker(dynsec_settings) as broker:
        issued = credentials.provision(registry, broker, topic_prefix, uid)
    with pytest.raises(BrokerError):
        credentials.rotate(registry, DownBroker(), topic_prefix, uid)
    with pytest.raises(BrokerError):
        credentials.revoke(registry, DownBroker(), uid)
    assert credentials.verify_secret(registry, uid, issued.password)


def test_rotation_recreates_a_client_the_broker_lost(
    registry: Any, dynsec_settings: Settings, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    uid = new_device(registry, "refrigerator")
    with credentials.credential_broker(dynsec_settings) as broker:
        credentials.provision(registry, broker, topic_prefix, uid)
        broker.delete_device(uid)  # e.g. a broker store restored from an old backup
        rotated = credentials.rotate(registry, broker, topic_prefix, uid)
    TestClient(dynsec_broker.host, dynsec_broker.port, uid, rotated.password, uid).close()
