"""Platform → device messages over MQTT (commands, desired state), confirmed by the broker.

`Downlink` is the seam: the API holds one `MqttDownlink` for its lifetime; tests may pass any
object with the same `publish` method.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from app.broker_url import MqttEndpoint
from devices.errors import BrokerError

log = structlog.get_logger(__name__)


class Downlink(Protocol):
    """Publishes one QoS 1 message and returns once the broker accepted it."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None: ...


class MqttDownlink:
    """A long-lived paho client that publishes with QoS 1 and waits for PUBACK."""

    def __init__(self, endpoint: MqttEndpoint, timeout_s: float = 5.0) -> None:
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"kizuna-downlink-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
        )
        if endpoint.username:
            self._client.username_pw_set(endpoint.username, endpoint.password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *_: self._connected.clear()
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("devices.downlink_refused", reason=str(reason))
            return
        self._connected.set()

    def open(self) -> MqttDownlink:
        """Connect (the network loop keeps reconnecting in the background)."""
        try:
            self._client.connect(self._endpoint.host, self._endpoint.port, keepalive=30)
        except OSError as exc:
            raise BrokerError(f"cannot reach the broker: {exc}") from exc
        self._client.loop_start()
        return self

    def close(self) -> None:
        """Disconnect and stop the network loop."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish QoS 1; BrokerError when the broker does not confirm in time."""
        if not self._connected.wait(self._timeout_s):
            raise BrokerError("not connected to the broker")
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(self._timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise BrokerError(f"the broker did not accept the message: {exc}") from exc
        if not info.is_published():
            raise BrokerError("the broker did not confirm the message in time")
