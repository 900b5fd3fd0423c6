"""Receive stage: the MQTT session (QoS 1, persistent, manual ack) that feeds the worker.

MQTT 5 is used when the broker speaks it: Receive Maximum then caps how many unacked
messages the broker hands us, which is what bounds memory when the database is slow.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices.protocol import Channel, device_filter
from ingest import metrics
from ingest.ack_order import AckSequencer
from ingest.config import IngestConfig
from ingest.models import Incoming
from ingest.mqtt_client import FastSubscriberClient
from ingest.routing import partition_of

log = structlog.get_logger(__name__)

UPLINK_CHANNELS = (Channel.TELEMETRY, Channel.EVENTS, Channel.STATUS, Channel.COMMAND_ACKS)
UNSUPPORTED_PROTOCOL = 132  # CONNACK reason code from a broker without MQTT 5


def subscription_filters(prefix: str, shared_group: str | None) -> list[str]:
    """The topic filters ingest subscribes to (shared when a group is configured)."""
    filters = [device_filter(prefix, channel) for channel in UPLINK_CHANNELS]
    if shared_group:
        filters = [f"$share/{shared_group}/{f}" for f in filters]
    return filters


class BrokerSession:
    """One persistent MQTT session; hands every message to `sink`, acks when told to."""

    def __init__(
        self,
        url: str,
        prefix: str,
        config: IngestConfig,
        sink: Callable[[Incoming], None],
        backlog: Callable[[], int] | None = None,
    ) -> None:
        """`backlog` (optional) tells how many received messages still wait for a batch;
        reading pauses while it is at the Receive Maximum or above."""
        self._url = urlsplit(url)
        self._backlog = backlog
        self._acks = AckSequencer(lambda mids: self._client.ack_many(mids))
        self._prefix = prefix
        self._config = config
        self._sink = sink
        self._protocol = mqtt.MQTTv5 if config.mqtt_protocol == "5" else mqtt.MQTTv311
        self._connected = threading.Event()
        self._refused: str | None = None
        self._client = self._build()

    @property
    def connected(self) -> bool:
        """True while the broker connection is up and every subscription is granted."""
        return self._connected.is_set()

    @property
    def protocol(self) -> str:
        """The MQTT version in use."""
        return "5" if self._protocol == mqtt.MQTTv5 else "3.1.1"

    def _build(self) -> FastSubscriberClient:
        v5 = self._protocol == mqtt.MQTTv5
        client = FastSubscriberClient(
            CallbackAPIVersion.VERSION2,
            client_id=self._config.client_id,
            protocol=self._protocol,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if self._url.username:
            client.username_pw_set(unquote(self._url.username), unquote(self._url.password or ""))
        if self._url.scheme == "mqtts":
            client.tls_set()
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.publish_sink = self._on_publish
        if self._backlog is not None:
            backlog, limit = self._backlog, self._config.receive_maximum
            client.paused = lambda: backlog() >= limit
        client.on_subscribe = self._on_subscribe
        return client

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect (falling back to MQTT 3.1.1 if the broker refuses 5) and start receiving."""
        self._connect()
        if not self._connected.wait(timeout_s) and self._refused == "protocol":
            self._client.loop_stop()
            self._protocol = mqtt.MQTTv311
            self._client = self._build()
            self._connect()
            self._connected.wait(timeout_s)

    def _connect(self) -> None:
        host, port = self._url.hostname or "127.0.0.1", self._url.port or 1883
        keepalive = self._config.keepalive_s
        if self._protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._config.session_expiry_s
            props.ReceiveMaximum = self._config.receive_maximum
            self._client.connect_async(host, port, keepalive, clean_start=False, properties=props)
        else:
            self._client.connect_async(host, port, keepalive)
        self._client.loop_start()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            if reason_code.value == UNSUPPORTED_PROTOCOL:
                self._refused = "protocol"
            log.warning("ingest.broker_refused", reason=str(reason_code))
            return
        self._acks.new_connection()  # before any message of this connection is handled
        filters = subscription_filters(self._prefix, self._config.shared_group)
        if self._protocol == mqtt.MQTTv5:
            # Retained messages are never fresh telemetry: do not replay them on subscribe,
            # and keep the retain flag of live ones so retained telemetry can be refused.
            options = SubscribeOptions(
                qos=1,
                retainAsPublished=True,
                retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND,
            )
            client.subscribe([(f, options) for f in filters])
        else:
            client.subscribe([(f, 1) for f in filters])
        log.info(
            "ingest.broker_connected",
            protocol=self.protocol,
            session_present=flags.session_present,
            shared_group=self._config.shared_group,
        )

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        # Ready (and healthy) only once the broker granted every subscription: before the
        # SUBACK a device's message to a new session would have no subscriber yet.
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.error("ingest.subscription_refused", reasons=refused)
            return
        self._connected.set()
        metrics.BROKER_UP.set(1)
        log.info("ingest.subscribed", filters=len(reason_codes))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        metrics.BROKER_UP.set(0)
        log.warning("ingest.broker_disconnected", reason=str(reason_code))

    def _on_publish(self, topic: bytes, payload: bytes, mid: int, qos: int, retain: bool) -> None:
        try:
            name = topic.decode()
        except UnicodeDecodeError:
            name = repr(topic)  # an invalid topic still gets a dead-letter row
        metrics.RECEIVED.inc()
        acks = self._acks
        if qos:
            acks.arrived(mid)
        if not self._owns(name):
            if qos:
                acks.done(acks.connection, (mid,))  # another partition's worker stores it
            return
        self._sink(Incoming(name, payload, mid, datetime.now(UTC), retain, qos, acks.connection))

    def _owns(self, topic: str) -> bool:
        count = self._config.partition_count
        if count == 1:
            return True
        parts = topic.split("/", 4)
        if len(parts) < 5:
            return self._config.partition_index == 0  # malformed: dead-lettered once
        return partition_of(parts[3], count) == self._config.partition_index

    def ack(self, messages: Iterable[Incoming]) -> None:
        """Acknowledge messages whose effects are committed (in arrival order: ack_order.py)."""
        by_connection: dict[int, list[int]] = {}
        for message in messages:
            if message.qos > 0:
                by_connection.setdefault(message.connection, []).append(message.mid)
        for connection, mids in by_connection.items():
            self._acks.done(connection, mids)

    def stop(self) -> None:
        """Disconnect (the persistent session keeps unacked messages for the next start)."""
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        metrics.BROKER_UP.set(0)
