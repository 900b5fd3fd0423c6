"""MQTT connections for simulated devices: own credentials, last will, jittered reconnects.

A `Link` is one paho-mqtt client. In per-device mode every device has its own link (its uid as
username and client id, its own last will). In shared mode a few links publish for many
devices, for fleets too large for one connection each; that needs a broker that lets one
client write to many devices' topics (anonymous or a gateway credential).
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from simulator.device import Outgoing

log = structlog.get_logger(__name__)

RECONNECT_BASE_S = 0.5
RECONNECT_CAP_S = 30.0
DISCONNECT_WITH_WILL = 4  # MQTT 5 reason code: "please publish my last will"
KEEPALIVE_S = 30


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and as whom to connect, from an mqtt:// or mqtts:// URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> MqttEndpoint:
        """Parse `mqtt://user:password@host:port` (mqtts:// for TLS)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError(f"not an MQTT URL: {parts.scheme}:// (use mqtt://host:1883)")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with ±50 % jitter, so a fleet does not reconnect in lock step."""
    return min(RECONNECT_CAP_S, RECONNECT_BASE_S * 2 ** min(attempt, 10)) * rng.uniform(0.5, 1.5)


NEGOTIATE_TIMEOUT_S = 3.0


def negotiate_protocol(
    endpoint: MqttEndpoint, username: str | None, password: str | None
) -> mqtt.MQTTProtocolVersion:
    """MQTT 5 when the broker answers it, else 3.1.1 (rumqttd's plain listener)."""
    for protocol in (mqtt.MQTTv5, mqtt.MQTTv311):
        answered = threading.Event()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"probe-{random.getrandbits(48):x}",
            protocol=protocol,
        )
        if username:
            client.username_pw_set(username, password)
        if endpoint.tls:
            client.tls_set()
        client.on_connect = lambda *_args, done=answered: done.set()
        try:
            client.connect(endpoint.host, endpoint.port, KEEPALIVE_S)
        except OSError:
            return mqtt.MQTTv5  # unreachable: let the links report it with their retries
        client.loop_start()
        ok = answered.wait(NEGOTIATE_TIMEOUT_S)
        client.loop_stop()
        with contextlib.suppress(OSError):
            client.disconnect()
        if ok:
            return protocol
    return mqtt.MQTTv5


class Link:
    """One MQTT connection that keeps itself connected until closed."""

    def __init__(
        self,
        endpoint: MqttEndpoint,
        client_id: str,
        *,
        username: str | None,
        password: str | None,
        will: Outgoing | None,
        subscriptions: list[str],
        on_message: Callable[[str, bytes], None],
        on_connected: Callable[[], None],
        seed: int = 0,
        protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
    ) -> None:
        self.endpoint = endpoint
        self.protocol = protocol
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.on_message = on_message
        self.on_connected = on_connected
        self.connected = threading.Event()
        self.ever_connected = False
        self.connects = 0
        self.failures = 0
        self.refused: str | None = None
        self.last_info: mqtt.MQTTMessageInfo | None = None
        self.sent = 0
        self.acked = 0
        self._rng = random.Random(f"{seed}:{client_id}")
        self._attempt = 0
        # MQTT 3.1.1 keeps the session with clean_session=False; MQTT 5 with clean_start.
        v311 = protocol == mqtt.MQTTv311
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=False if v311 else None,
        )
        if username:
            client.username_pw_set(username, password)
        if endpoint.tls:
            client.tls_set()
        if will is not None:
            client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self.client = client

    def start(self) -> None:
        """Connect in the background; reconnects happen on their own."""
        self._set_delay(RECONNECT_BASE_S)
        if self.protocol == mqtt.MQTTv311:
            self.client.connect_async(self.endpoint.host, self.endpoint.port, KEEPALIVE_S)
            self.client.loop_start()
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # keep commands queued across short outages
        self.client.connect_async(
            self.endpoint.host,
            self.endpoint.port,
            KEEPALIVE_S,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def publish(self, message: Outgoing) -> bool:
        """Queue one message (QoS 1); False when not connected (the caller keeps it)."""
        if not self.connected.is_set():
            return False
        info = self.client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self.last_info = info
        self.sent += 1
        return True

    @property
    def outstanding(self) -> int:
        """Messages handed to the client and not yet acknowledged by the broker."""
        return self.sent - self.acked

    def drop(self) -> None:
        """Leave abruptly, as a device losing its network does: the broker sends the will."""
        if self.protocol == mqtt.MQTTv311:
            # 3.1.1 has no "disconnect with will": drop the socket without a DISCONNECT.
            self.client.loop_stop()
            sock = self.client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        else:
            self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
            self.client.loop_stop()
        self.connected.clear()

    def resume(self) -> None:
        """Come back after `drop`."""
        self.start()

    def flush(self, timeout_s: float) -> bool:
        """Wait until the last queued message is acknowledged by the broker."""
        if self.last_info is None:
            return True
        try:
            self.last_info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):
            return False
        return self.last_info.is_published()

    def close(self, goodbye: Outgoing | None = None) -> None:
        """Say goodbye (a retained offline status) and disconnect cleanly."""
        if goodbye is not None and self.connected.is_set():
            info = self.client.publish(goodbye.topic, goodbye.payload, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            self._schedule_retry()
            log.warning(
                "simulator.connect_refused", client_id=self.client_id, reason=str(reason_code)
            )
            return
        self.refused = None
        self._attempt = 0
        self.connects += 1
        self.ever_connected = True
        for topic in self.subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()
        try:
            self.on_connected()
        except Exception:  # a failing callback must never kill the network loop
            log.exception("simulator.on_connected_failed", client_id=self.client_id)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code.value != 0:
            self.failures += 1
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        delay = backoff_delay(self._attempt, self._rng)
        self._attempt += 1
        self._set_delay(delay)

    def _set_delay(self, seconds: float) -> None:
        # paho waits min_delay before the next attempt; it takes fractional seconds.
        delay = cast(int, seconds)
        self.client.reconnect_delay_set(delay, delay)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.acked += 1

    def _on_message(self, client, userdata, message) -> None:
        try:
            self.on_message(message.topic, bytes(message.payload))
        except Exception:
            log.exception("simulator.on_message_failed", client_id=self.client_id)
