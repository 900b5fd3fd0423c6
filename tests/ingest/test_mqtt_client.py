"""The tuned paho client against a real broker: every byte arrives, acks work, unacked return.

Each test targets one override of ingest/mqtt_client.py: buffered reads (messages of many
sizes, some larger than the read chunk), the direct PUBLISH path (topics, payloads, retain
flags, packet ids), and `ack_many` (acked messages never return, unacked ones do).
"""

from __future__ import annotations

import secrets
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.mqtt_wire import publish_packet
from ingest.mqtt_client import READ_CHUNK, BufferedSocket, FastSubscriberClient
from tests.conftest import TestBroker

Received = tuple[bytes, bytes, int, int, bool]
ACK_BATCH = 10  # below the broker's default in-flight window of 20


class Collector:
    """Records what arrives and acks it in batches of ACK_BATCH through `ack_many`.

    Only the first `ack_limit` messages are acked (None: all of them).
    """

    def __init__(self, ack_limit: int | None = None) -> None:
        self.received: list[Received] = []
        self.ack_limit = ack_limit
        self.client: FastSubscriberClient | None = None
        self._unacked: list[int] = []

    def __call__(self, topic: bytes, payload: bytes, mid: int, qos: int, retain: bool) -> None:
        self.received.append((topic, payload, mid, qos, retain))
        if self.ack_limit is not None and len(self.received) > self.ack_limit:
            return
        self._unacked.append(mid)
        if len(self._unacked) >= ACK_BATCH or len(self.received) == self.ack_limit:
            assert self.client is not None
            self.client.ack_many(self._unacked)  # one write for the batch
            self._unacked = []


class ChunkedSocket:
    """A socket stand-in that hands out preset chunks, then says 'would block'."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def recv(self, bufsize: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        assert len(chunk) <= bufsize
        return chunk

    def close(self) -> None:
        self.closed = True


def test_buffered_socket_serves_small_reads_from_one_large_read() -> None:
    inner = ChunkedSocket([b"abcdef", b"gh"])
    sock = BufferedSocket(inner)
    assert sock.recv(1) == b"a"
    assert sock.pending() == 5
    assert sock.recv(2) == b"bc"
    assert sock.recv(10) == b"def"  # never more than is buffered
    assert sock.buffered == 0
    assert sock.recv(8) == b"gh"
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    sock.close()  # everything else is the wrapped socket's
    assert inner.closed


def test_take_publishes_stops_at_other_packets_and_partial_ones() -> None:
    ping_response = b"\xd0\x00"
    packets = [publish_packet(b"t/%d" % i, i + 1, b"payload-%d" % i) for i in range(4)]
    stream = ping_response + packets[0] + packets[1] + ping_response + packets[2] + packets[3][:5]
    sock = BufferedSocket(ChunkedSocket([stream]))
    delivered: list[tuple[int, bytes]] = []

    def deliver(header: int, body: bytes) -> MQTTErrorCode:
        delivered.append((header, body))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    assert sock.recv(2) == ping_response  # paho's reader takes the first packet
    assert sock.take_publishes(deliver) == 2
    assert sock.recv(2) == ping_response  # not a PUBLISH: left for paho
    assert sock.take_publishes(deliver) == 1
    assert sock.take_publishes(deliver) == 0  # the last one is incomplete
    assert sock.buffered == 5
    assert [body[-9:] for _, body in delivered] == [b"payload-%d" % i for i in range(3)]
    assert {header for header, _ in delivered} == {0x32}


def _subscriber(
    broker: TestBroker, client_id: str, collector: Collector, v5: bool, run: str
) -> FastSubscriberClient:
    parts = urlsplit(broker.url)
    client = FastSubscriberClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else False,
        manual_ack=True,
    )
    client.publish_sink = collector
    collector.client = client
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(f"kzmc/{run}/#", qos=1)
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        client.connect(
            parts.hostname or "", parts.port or 1883, clean_start=False, properties=props
        )
    else:
        client.connect(parts.hostname or "", parts.port or 1883)
    client.loop_start()
    assert subscribed.wait(10)
    return client


def _publish(broker: TestBroker, messages: list[tuple[str, bytes, bool]]) -> None:
    parts = urlsplit(broker.url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(100)
    client.connect(parts.hostname or "", parts.port or 1883)
    client.loop_start()
    infos = [
        client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages
    ]
    for info in infos:
        info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def _wait_for(collector: Collector, count: int, timeout_s: float = 15.0) -> list[Received]:
    deadline = time.monotonic() + timeout_s
    while len(collector.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return collector.received


@pytest.fixture(params=["5", "3.1.1"])
def protocol(request: pytest.FixtureRequest, mqtt_broker: TestBroker) -> str:
    if request.param == "5" and not mqtt_broker.supports_mqtt5:
        pytest.skip("needs an MQTT 5 broker (install mosquitto, or set KIZUNA_TEST_MQTT_URL)")
    return str(request.param)


def test_every_message_arrives_intact_in_order(mqtt_broker: TestBroker, protocol: str) -> None:
    run = secrets.token_hex(3)
    # Under 256 KiB (the brokers' size limit); 30 rounds make a 10 MB stream, so packets
    # straddle many READ_CHUNK reads.
    sizes = [0, 1, 127, 128, 16_383, 16_384, READ_CHUNK // 2 + 7, 3, READ_CHUNK - 100, 40]
    messages = [
        (f"kzmc/{run}/dev-{i % 7}/telemetry", bytes([i % 251]) * size, False)
        for i, size in enumerate(sizes * 30)
    ]
    collector = Collector()
    client = _subscriber(mqtt_broker, f"kzmc-{run}", collector, protocol == "5", run)
    try:
        _publish(mqtt_broker, messages)
        received = _wait_for(collector, len(messages))
        assert [(t.decode(), p) for t, p, *_ in received] == [(t, p) for t, p, _ in messages]
        assert all(qos == 1 and not retain for _, _, _, qos, retain in received)
    finally:
        client.disconnect()
        client.loop_stop()


def test_acked_messages_never_return_and_unacked_ones_do(
    mqtt_broker: TestBroker, protocol: str
) -> None:
    run = secrets.token_hex(3)
    client_id = f"kzmc-{run}"
    messages = [(f"kzmc/{run}/dev/telemetry", b"%d" % i, False) for i in range(200)]
    v5 = protocol == "5"
    first = Collector(ack_limit=150)
    client = _subscriber(mqtt_broker, client_id, first, v5, run)
    _publish(mqtt_broker, messages)
    _wait_for(first, 160)  # the broker stops at its in-flight window of unacked messages
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()
    assert [p for _, p, *_ in first.received[:150]] == [p for _, p, _ in messages[:150]]

    again = Collector()
    client = _subscriber(mqtt_broker, client_id, again, v5, run)
    try:
        _wait_for(again, 50)
        time.sleep(0.5)  # anything more would be a wrongly redelivered acked message
        assert [p for _, p, *_ in again.received] == [p for _, p, _ in messages[150:]]
    finally:
        client.disconnect()
        client.loop_stop()
        _end_session(mqtt_broker, client_id)


def test_retain_flag_is_passed_on(mqtt_broker: TestBroker, protocol: str) -> None:
    run = secrets.token_hex(3)
    v5 = protocol == "5"
    live = Collector()
    client = _subscriber(mqtt_broker, f"kzmc-{run}", live, v5, run)
    try:
        _publish(mqtt_broker, [(f"kzmc/{run}/dev/status", b"online", True)])
        received = _wait_for(live, 1)
        # Live delivery clears retain (3.1.1, and MQTT 5 without retain-as-published); a new
        # subscription gets the stored retained message with the flag set.
        assert [(p, retain) for _, p, _, _, retain in received] == [(b"online", False)]
        late = Collector()
        late_client = _subscriber(mqtt_broker, f"kzmc-late-{run}", late, v5, run)
        assert [(p, r) for _, p, _, _, r in _wait_for(late, 1)] == [(b"online", True)]
        late_client.disconnect()
        late_client.loop_stop()
    finally:
        _publish(mqtt_broker, [(f"kzmc/{run}/dev/status", b"", True)])  # clear the retained one
        client.disconnect()
        client.loop_stop()


def _end_session(broker: TestBroker, client_id: str) -> None:
    """Connect once with a clean session so the broker forgets the persistent one."""
    parts = urlsplit(broker.url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect(parts.hostname or "", parts.port or 1883)
    client.disconnect()


def test_nothing_is_read_while_paused_and_everything_after(
    mqtt_broker: TestBroker, protocol: str
) -> None:
    run = secrets.token_hex(3)
    collector = Collector()
    client = _subscriber(mqtt_broker, f"kzmc-{run}", collector, protocol == "5", run)
    hold = threading.Event()
    hold.set()
    client.paused = hold.is_set
    try:
        _publish(mqtt_broker, [(f"kzmc/{run}/dev/telemetry", b"%d" % i, False) for i in range(50)])
        time.sleep(1.0)
        assert collector.received == []  # the broker's messages wait in the socket
        hold.clear()
        received = _wait_for(collector, 50)
        assert [p for _, p, *_ in received] == [b"%d" % i for i in range(50)]
    finally:
        client.disconnect()
        client.loop_stop()
