"""A small synchronous MQTT client for tests: connect, subscribe, publish, collect."""

from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

WAIT_S = 5.0


class ConnectRefused(Exception):
    """The broker refused the connection."""


class TestClient:
    """One MQTT connection that records what it receives and whether it was cut off."""

    __test__ = False

    def __init__(
        self,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        client_id: str,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.disconnected = threading.Event()
        self._connected = threading.Event()
        self._reason: Any = None
        self._subacks: dict[int, list[Any]] = {}
        self._suback_event = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, bytes(m.payload), bool(m.retain))
        )
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(WAIT_S) or self._reason is None or self._reason.is_failure:
            self.close()
            raise ConnectRefused(str(self._reason))

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._reason = reason
        self._connected.set()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[Any], _p: Any) -> None:
        with self._suback_event:
            self._subacks[mid] = codes
            self._suback_event.notify_all()

    def subscribe(self, topic: str) -> bool:
        """Subscribe with QoS 1; True when the broker granted it."""
        _, sent = self.client.subscribe(topic, qos=1)
        mid = int(sent or 0)
        with self._suback_event:
            self._suback_event.wait_for(lambda: mid in self._subacks, WAIT_S)
            codes = self._subacks.get(mid)
        if codes is None:
            raise TimeoutError("no SUBACK")
        return not codes[0].is_failure

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Publish with QoS 1 and wait for the broker's PUBACK."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)

    def wait_for(self, count: int, timeout_s: float = WAIT_S) -> list[tuple[str, bytes, bool]]:
        """The messages received once at least `count` arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
