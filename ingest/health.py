"""Health of ingest: the running worker's own view, and an active probe for /health."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from store.config import StoreConfig
from store.db import connect


@dataclass(frozen=True, slots=True)
class IngestHealth:
    """What a running ingest worker knows about its connections and progress."""

    database_connected: bool
    broker_connected: bool
    mqtt_protocol: str
    pending_messages: int
    last_commit_at: datetime | None

    @property
    def ok(self) -> bool:
        """True when both connections are up."""
        return self.database_connected and self.broker_connected

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"ok": self.ok, **asdict(self)}


_current: IngestHealth | None = None


def publish(health: IngestHealth | None) -> None:
    """Record the running worker's health (read by `current` in the same process).

    A worker starting publishes None first, so no one reads an earlier worker's "ok".
    """
    global _current
    _current = health


def current() -> IngestHealth | None:
    """The health of the worker running in this process, if any."""
    return _current


def probe(database_url: str, mqtt_url: str, timeout_s: float = 2.0) -> dict[str, Any]:
    """Check from outside that ingest's database and broker answer (for an HTTP /health)."""
    database = _probe_database(database_url, timeout_s)
    broker = _probe_broker(mqtt_url, timeout_s)
    return {"ok": database["ok"] and broker["ok"], "database": database, "broker": broker}


def _probe_database(url: str, timeout_s: float) -> dict[str, Any]:
    config = StoreConfig(connect_timeout_s=max(1.0, timeout_s), statement_timeout_ms=2000)
    try:
        with connect(url, config, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return {"ok": True}
    except psycopg.Error as exc:
        return {"ok": False, "error": type(exc).__name__}


def _probe_broker(url: str, timeout_s: float) -> dict[str, Any]:
    parts = urlsplit(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"kizuna-health-{secrets.token_hex(4)}"
    )
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme == "mqtts":
        client.tls_set()
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=5)
        deadline = time.monotonic() + timeout_s
        while not client.is_connected() and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
        connected = client.is_connected()
        client.disconnect()
        return {"ok": True} if connected else {"ok": False, "error": "not accepted"}
    except OSError as exc:
        return {"ok": False, "error": type(exc).__name__}
