"""Per-device credentials enforced by the real Mosquitto (dynamic-security plugin)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator

import pytest

from devices.broker_setup import ensure_platform_services
from devices.dynsec import DynsecAdmin
from devices.protocol import Channel, device_topic
from tests.devices.conftest import DynsecBroker
from tests.devices.mqtt_helpers import ConnectRefused, TestClient

QUIET_S = 1.0


@pytest.fixture
def admin(dynsec_broker: DynsecBroker) -> Iterator[DynsecAdmin]:
    with DynsecAdmin(dynsec_broker.admin_endpoint) as connected:
        yield connected


def _uid() -> str:
    return f"dev-{secrets.token_hex(4)}"


def _device(broker: DynsecBroker, uid: str, password: str) -> TestClient:
    return TestClient(broker.host, broker.port, uid, password, client_id=uid)


def _ingest(admin: DynsecAdmin, broker: DynsecBroker, prefix: str) -> TestClient:
    password = secrets.token_urlsafe(16)
    ensure_platform_services(admin, prefix, {"ingest": password})
    watcher = TestClient(broker.host, broker.port, "kizuna-ingest", password, f"i-{prefix}")
    assert watcher.subscribe(f"{prefix}/v1/devices/+/telemetry")
    return watcher


def test_device_can_publish_only_as_itself(
    admin: DynsecAdmin, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    a, b = _uid(), _uid()
    admin.create_device(topic_prefix, a, "secret-a-" + a)
    admin.create_device(topic_prefix, b, "secret-b-" + b)
    watcher = _ingest(admin, dynsec_broker, topic_prefix)
    device_a = _device(dynsec_broker, a, "secret-a-" + a)
    try:
        device_a.publish(device_topic(topic_prefix, b, Channel.TELEMETRY), b"forged")
        device_a.publish(device_topic(topic_prefix, a, Channel.TELEMETRY), b"own")
        received = watcher.wait_for(2, timeout_s=QUIET_S)
    finally:
        device_a.close()
        watcher.close()
    assert received == [(device_topic(topic_prefix, a, Channel.TELEMETRY), b"own", False)]


def test_device_cannot_subscribe_beyond_its_own_topics(
    admin: DynsecAdmin, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    a, b = _uid(), _uid()
    admin.create_device(topic_prefix, a, "pw-" + a)
    device_a = _device(dynsec_broker, a, "pw-" + a)
    try:
        assert not device_a.subscribe("#")
        assert not device_a.subscribe("$SYS/#")
        assert not device_a.subscribe(f"{topic_prefix}/v1/devices/+/commands/+")
        assert not device_a.subscribe(f"{topic_prefix}/v1/devices/{b}/#")
        assert not device_a.subscribe(f"$share/g/{topic_prefix}/v1/devices/{b}/#")
        assert device_a.subscribe(f"{topic_prefix}/v1/devices/{a}/commands/+")
        assert device_a.subscribe(device_topic(topic_prefix, a, Channel.DESIRED))
    finally:
        device_a.close()


def test_device_cannot_take_another_client_id_or_connect_anonymously(
    admin: DynsecAdmin, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    a, b = _uid(), _uid()
    admin.create_device(topic_prefix, a, "pw-" + a)
    with pytest.raises(ConnectRefused):
        TestClient(dynsec_broker.host, dynsec_broker.port, a, "pw-" + a, client_id=b)
    with pytest.raises(ConnectRefused):
        TestClient(dynsec_broker.host, dynsec_broker.port, None, None, client_id=a)
    with pytest.raises(ConnectRefused):
        TestClient(dynsec_broker.host, dynsec_broker.port, a, "wrong", client_id=a)


def test_rotated_credential_is_refused_and_the_old_session_cut(
    admin: DynsecAdmin, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    a = _uid()
    admin.create_device(topic_prefix, a, "old-" + a)
    connected = _device(dynsec_broker, a, "old-" + a)
    try:
        admin.set_password(a, "new-" + a)
        assert connected.disconnected.wait(5)
    finally:
        connected.close()
    with pytest.raises(ConnectRefused):
        _device(dynsec_broker, a, "old-" + a)
    _device(dynsec_broker, a, "new-" + a).close()


def test_revoked_device_is_cut_off_and_refused(
    admin: DynsecAdmin, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    a = _uid()
    admin.create_device(topic_prefix, a, "pw-" + a)
    connected = _device(dynsec_broker, a, "pw-" + a)
    try:
        admin.delete_device(a)
        assert connected.disconnected.wait(5)
    finally:
        connected.close()
    with pytest.raises(ConnectRefused):
        _device(dynsec_broker, a, "pw-" + a)


def test_platform_service_roles_are_separate(
    admin: DynsecAdmin, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    notify_pw = secrets.token_urlsafe(16)
    ensure_platform_services(admin, topic_prefix, {"notify": notify_pw})
    notify = TestClient(
        dynsec_broker.host, dynsec_broker.port, "kizuna-notify", notify_pw, f"n-{topic_prefix}"
    )
    try:
        # notify pushes owner feeds; it has no business reading device telemetry.
        assert not notify.subscribe(f"{topic_prefix}/v1/devices/+/telemetry")
    finally:
        notify.close()


def _drop_without_disconnect(client: TestClient) -> None:
    """Vanish like a device losing power, so the broker publishes its will."""
    client.client.loop_stop()
    sock = client.client.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def test_a_will_aimed_at_another_device_is_never_delivered(
    admin: DynsecAdmin, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    a, b = _uid(), _uid()
    admin.create_device(topic_prefix, a, "pw-" + a)
    password = secrets.token_urlsafe(16)
    ensure_platform_services(admin, topic_prefix, {"ingest": password})
    watcher = TestClient(dynsec_broker.host, dynsec_broker.port, "kizuna-ingest", password, "w1")
    assert watcher.subscribe(f"{topic_prefix}/v1/devices/+/status")
    forged_will = (device_topic(topic_prefix, b, Channel.STATUS), b'{"state":"offline"}')
    own_will = (device_topic(topic_prefix, a, Channel.STATUS), b'{"state":"offline"}')
    try:
        for topic, payload in (forged_will, own_will):
            device = TestClient(
                dynsec_broker.host, dynsec_broker.port, a, "pw-" + a, a, will=(topic, payload)
            )
            _drop_without_disconnect(device)
        received = watcher.wait_for(2, timeout_s=QUIET_S * 3)
    finally:
        watcher.close()
    # The device's own will arrives (the control that the drop works); the forged one never.
    assert [topic for topic, _, _ in received] == [own_will[0]]


def test_ingest_role_may_share_uplink_subscriptions_and_nothing_wider(
    admin: DynsecAdmin, dynsec_broker: DynsecBroker, topic_prefix: str
) -> None:
    password = secrets.token_urlsafe(16)
    ensure_platform_services(admin, topic_prefix, {"ingest": password})
    ingest = TestClient(dynsec_broker.host, dynsec_broker.port, "kizuna-ingest", password, "i2")
    try:
        assert ingest.subscribe(f"$share/ingest/{topic_prefix}/v1/devices/+/telemetry")
        assert ingest.subscribe(f"{topic_prefix}/v1/devices/+/command-acks")
        assert not ingest.subscribe(f"{topic_prefix}/#")
        assert not ingest.subscribe(f"$share/ingest/{topic_prefix}/v1/devices/+/commands/+")
        assert not ingest.subscribe("$SYS/#")
    finally:
        ingest.close()
