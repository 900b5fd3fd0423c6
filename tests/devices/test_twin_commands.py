"""Twin (desired state, delta, online) and commands against the real broker and database."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.broker_url import MqttEndpoint
from devices import commands, twin
from devices.downlink import MqttDownlink
from devices.errors import BrokerError, InvalidRequest, NotFound
from devices.models import CommandCreate, DesiredUpdate
from devices.protocol import Channel, CommandAck, DeviceStatus, device_topic
from devices.uplink import apply_command_ack, apply_status
from tests.devices.conftest import new_device
from tests.devices.mqtt_helpers import TestClient

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class RefusingDownlink:
    """A broker that never confirms (the injected seam for broker outages)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        raise BrokerError("broker unavailable")


@pytest.fixture
def downlink(mqtt_url: str) -> Iterator[MqttDownlink]:
    link = MqttDownlink(MqttEndpoint.from_url(mqtt_url)).open()
    yield link
    link.close()


@pytest.fixture
def listener(mqtt_url: str, topic_prefix: str) -> Iterator[TestClient]:
    endpoint = MqttEndpoint.from_url(mqtt_url)
    client = TestClient(endpoint.host, endpoint.port, None, None, f"l-{secrets.token_hex(4)}")
    assert client.subscribe(f"{topic_prefix}/#")
    yield client
    client.close()


def test_desired_state_is_published_retained_and_the_delta_follows(
    registry: Any, downlink: MqttDownlink, listener: TestClient, topic_prefix: str
) -> None:
    uid = new_device(registry, "ev")
    update = DesiredUpdate(values={"charge_limit_pct": 80})
    result = twin.set_desired(registry, downlink, topic_prefix, uid, update, NOW)
    assert (result.desired, result.desired_version, result.delta) == (
        {"charge_limit_pct": 80},
        1,
        {"charge_limit_pct": 80},
    )
    topic, payload, _ = listener.wait_for(1)[0]
    assert topic == device_topic(topic_prefix, uid, Channel.DESIRED)
    assert json.loads(payload) == {"version": 1, "values": {"charge_limit_pct": 80}}
    # The device reports the value: no delta any more.
    registry.execute(
        """UPDATE device_twins SET reported = '{"charge_limit_pct": {"v": 80, "t": null}}'
        WHERE device_id = (SELECT id FROM devices WHERE uid = %s)""",
        (uid,),
    )
    assert twin.get_twin(registry, uid, NOW).delta == {}


def test_bad_desired_state_or_refused_publish_changes_nothing(
    registry: Any, topic_prefix: str
) -> None:
    uid = new_device(registry, "ev")
    with pytest.raises(InvalidRequest, match="above maximum"):
        twin.set_desired(
            registry,
            RefusingDownlink(),
            topic_prefix,
            uid,
            DesiredUpdate(values={"charge_limit_pct": 120}),
            NOW,
        )
    with pytest.raises(InvalidRequest, match="not a desired setting"):
        twin.set_desired(
            registry,
            RefusingDownlink(),
            topic_prefix,
            uid,
            DesiredUpdate(values={"speed_kmh": 10}),
            NOW,
        )
    with pytest.raises(BrokerError):
        twin.set_desired(
            registry,
            RefusingDownlink(),
            topic_prefix,
            uid,
            DesiredUpdate(values={"charge_limit_pct": 90}),
            NOW,
        )
    state = twin.get_twin(registry, uid, NOW)
    assert (state.desired, state.desired_version) == ({}, 0)
    with pytest.raises(NotFound):
        twin.get_twin(registry, "missing", NOW)


def test_online_needs_status_and_recent_contact(registry: Any) -> None:
    uid = new_device(registry, "refrigerator")
    device_id = registry.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()["id"]
    assert twin.get_twin(registry, uid, NOW).connection == "unknown"
    apply_status(registry, device_id, DeviceStatus(state="online"), NOW)
    assert twin.get_twin(registry, uid, NOW + timedelta(minutes=5)).online
    # Still "online" by status, but silent for longer than offline_after_s: not online.
    assert not twin.get_twin(registry, uid, NOW + timedelta(hours=1), offline_after_s=900).online
    apply_status(registry, device_id, DeviceStatus(state="offline"), NOW + timedelta(minutes=6))
    assert not twin.get_twin(registry, uid, NOW + timedelta(minutes=6)).online
    history = twin.connection_history(registry, uid)
    assert [h.state for h in history] == ["offline", "online"]


def test_command_is_validated_published_and_acked(
    registry: Any, downlink: MqttDownlink, listener: TestClient, topic_prefix: str
) -> None:
    uid = new_device(registry, "ev")
    device_id = registry.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()["id"]
    with pytest.raises(InvalidRequest, match="no command"):
        commands.send_command(
            registry, downlink, topic_prefix, uid, CommandCreate(name="self_destruct"), NOW
        )
    with pytest.raises(InvalidRequest, match="limit_pct: missing"):
        commands.send_command(
            registry, downlink, topic_prefix, uid, CommandCreate(name="set_charge_limit"), NOW
        )
    command = CommandCreate(name="set_charge_limit", args={"limit_pct": 90}, ttl_s=60)
    sent = commands.send_command(registry, downlink, topic_prefix, uid, command, NOW, "op-1")
    assert sent.status == "pending" and sent.published_at is not None
    topic, payload, _ = listener.wait_for(1)[0]
    assert topic == device_topic(topic_prefix, uid, Channel.COMMANDS, sent.command_id)
    body = json.loads(payload)
    assert (body["command_id"], body["name"], body["args"]) == (
        sent.command_id,
        "set_charge_limit",
        {"limit_pct": 90},
    )
    ack = CommandAck(command_id=sent.command_id, status="done", ts=NOW)
    apply_command_ack(registry, device_id, ack, NOW + timedelta(seconds=2))
    assert commands.get_command(registry, uid, sent.command_id).status == "acked"
    assert [c.command_id for c in commands.list_commands(registry, uid)] == [sent.command_id]


def test_unanswered_commands_expire_and_refused_ones_fail(
    registry: Any, downlink: MqttDownlink, topic_prefix: str
) -> None:
    uid = new_device(registry, "air_conditioner")
    power = CommandCreate(name="set_mode", args={"mode": "cool"}, ttl_s=30)
    lost = commands.send_command(registry, downlink, topic_prefix, uid, power, NOW)
    refused = commands.send_command(registry, RefusingDownlink(), topic_prefix, uid, power, NOW)
    assert refused.status == "failed" and "broker" in (refused.detail or "")
    assert commands.expire_commands(registry, NOW + timedelta(seconds=29)) == 0
    assert commands.expire_commands(registry, NOW + timedelta(seconds=30)) == 1
    assert commands.get_command(registry, uid, lost.command_id).status == "expired"
    assert commands.expire_commands(registry, NOW + timedelta(hours=1)) == 0
