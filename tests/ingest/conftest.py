"""Fixtures for ingest tests: registered devices, a running ingest, a device-side publisher."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import REGISTRY

from app.settings import Settings
from devices.catalog_sync import sync_product_models
from devices.protocol import Channel, device_topic
from ingest.config import IngestConfig
from ingest.mqtt import BrokerSession
from ingest.records import BatchStep
from ingest.worker import IngestWorker
from store.db import connect
from tests.api.conftest import (  # noqa: F401  (the API fixtures, for test_api.py)
    api,
    api_settings,
    customer_a,
    make_user,
    operator,
    smtp,
    support,
)

WAIT_S = 15.0


def register_devices(database_url: str, model_id: str, count: int) -> dict[str, int]:
    """Sync product models and register `count` devices; uid → device id."""
    with connect(database_url, autocommit=True) as conn:
        sync_product_models(conn)
        ids = {}
        for _ in range(count):
            uid = f"{model_id[:6]}-{secrets.token_hex(4)}"
            row = conn.execute(
                "INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, %s) RETURNING id",
                (uid, f"SN-{uid}", model_id),
            ).fetchone()
            assert row is not None
            ids[uid] = row["id"]
    return ids


def wait_until(predicate: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail the test."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout_s}s")


def sample(name: str, **labels: str) -> float:
    """Current value of a Prometheus sample (0 when never set)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


class RunningIngest:
    """An ingest worker and its broker session running in a background thread."""

    def __init__(
        self, settings: Settings, steps: tuple[BatchStep, ...] = (), **config: Any
    ) -> None:
        assert settings.database_url and settings.mqtt_url
        values = settings.ingest.model_dump() | {"batch_max_wait_ms": 20} | config
        self.config = IngestConfig(**values)
        self.worker = IngestWorker(
            settings.database_url,
            settings.mqtt_topic_prefix,
            self.config,
            settings.store,
            steps=steps,
        )
        worker = self.worker
        self.session = BrokerSession(
            settings.mqtt_url,
            settings.mqtt_topic_prefix,
            self.config,
            worker.submit,
            backlog=lambda: worker.pending,
        )
        self.stop_event = threading.Event()
        self.session.start()
        assert self.session.connected, "ingest could not connect to the broker"
        self.thread = threading.Thread(
            target=self.worker.run, args=(self.session.ack, self.stop_event), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        """Stop the worker, then the session."""
        self.stop_event.set()
        self.thread.join(10)
        self.session.stop()


@pytest.fixture
def start_ingest(settings: Settings) -> Iterator[Callable[..., RunningIngest]]:
    """Start ingest workers for this test (stopped at teardown)."""
    running: list[RunningIngest] = []

    def start(steps: tuple[BatchStep, ...] = (), **config: Any) -> RunningIngest:
        ingest = RunningIngest(settings, steps, **config)
        running.append(ingest)
        return ingest

    yield start
    for ingest in running:
        ingest.stop()


class Device:
    """A device-side MQTT client that publishes Kizuna protocol messages with QoS 1."""

    def __init__(self, mqtt_url: str, prefix: str, uid: str) -> None:
        parts = urlsplit(mqtt_url)
        self.prefix = prefix
        self.uid = uid
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"dev-{uid}-{secrets.token_hex(3)}",
            protocol=mqtt.MQTTv5,
        )
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()

    def topic(self, channel: Channel) -> str:
        """This device's topic for a channel."""
        return device_topic(self.prefix, self.uid, channel)

    def raw(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish bytes as they are and wait for the broker to take them."""
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def reading(self, seq: int, metrics: dict[str, Any], ts: datetime | None = None) -> None:
        """Publish one telemetry reading."""
        self.raw(self.topic(Channel.TELEMETRY), reading_payload(seq, metrics, ts))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def reading_payload(seq: int, metrics: dict[str, Any], ts: datetime | None = None) -> bytes:
    """JSON bytes of one reading."""
    moment = ts or datetime.now(UTC)
    return json.dumps({"seq": seq, "ts": moment.isoformat(), "metrics": metrics}).encode()


def ago(seconds: float) -> datetime:
    """A UTC time `seconds` in the past."""
    return datetime.now(UTC) - timedelta(seconds=seconds)


@pytest.fixture
def make_device(mqtt_url: str, topic_prefix: str) -> Iterator[Callable[[str], Device]]:
    """Connect device-side publishers (closed at teardown)."""
    devices: list[Device] = []

    def make(uid: str) -> Device:
        device = Device(mqtt_url, topic_prefix, uid)
        devices.append(device)
        return device

    yield make
    for device in devices:
        device.close()


WASHER_OK = {
    "phase": "wash",
    "remaining_min": 42,
    "water_flow_lpm": 3.5,
    "drum_temp_c": 40.0,
    "leak_detected": False,
    "power_w": 512.5,
    "cycles_since_drum_clean": 7,
    "door_locked": True,
}
