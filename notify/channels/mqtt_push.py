"""Push to the owner's app over MQTT on the owner's feed topic (QoS 1)."""

from __future__ import annotations

import json
import secrets
import threading
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from app.settings import Settings
from devices.protocol import owner_feed_topic
from notify.errors import TransientDeliveryError
from notify.models import Outgoing


class MqttPushChannel:
    """Publishes each notification to `{prefix}/v1/owners/{public_id}/feed`, waiting for PUBACK."""

    def __init__(self, settings: Settings, timeout_s: float | None = None) -> None:
        self._prefix = settings.mqtt_topic_prefix
        self._url = settings.mqtt_url
        self._timeout = timeout_s or settings.notify.delivery_timeout_s
        self._client: mqtt.Client | None = None
        self._lock = threading.Lock()

    def _connected(self) -> mqtt.Client:
        with self._lock:
            if self._client is not None and self._client.is_connected():
                return self._client
            if self._client is not None:  # lost: stop its network thread before replacing it
                self._client.loop_stop()
                self._client.disconnect()
                self._client = None
            if self._url is None:
                raise TransientDeliveryError("no MQTT broker configured")
            parts = urlsplit(self._url)
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"kizuna-notify-{secrets.token_hex(4)}",
            )
            if parts.username:
                client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
            if parts.scheme == "mqtts":
                client.tls_set()
            try:
                client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
            except OSError as exc:
                raise TransientDeliveryError("MQTT broker unreachable") from exc
            client.loop_start()
            self._client = client
            return client

    def deliver(self, message: Outgoing) -> None:
        """Publish and wait for the broker's acknowledgement."""
        client = self._connected()
        topic = owner_feed_topic(self._prefix, message.customer_public_id)
        info = client.publish(topic, json.dumps(message.payload()).encode(), qos=1)
        try:
            info.wait_for_publish(timeout=self._timeout)
        except (RuntimeError, ValueError) as exc:
            raise TransientDeliveryError("MQTT publish failed") from exc
        if not info.is_published():
            raise TransientDeliveryError("MQTT publish not acknowledged in time")

    def close(self) -> None:
        """Disconnect from the broker."""
        with self._lock:
            if self._client is not None:
                self._client.loop_stop()
                self._client.disconnect()
                self._client = None
