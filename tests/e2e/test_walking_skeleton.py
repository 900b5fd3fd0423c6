"""End to end: 50 simulated devices → real broker → ingest → PostgreSQL → API.

An independent MQTT observer records what the devices actually published; the test then
proves every reading is stored exactly once and that the API, reached through a real
login with two-factor authentication, returns each device's latest state.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pyotp
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from app.broker_url import MqttEndpoint
from app.demo_seed import seed_demo
from app.settings import Settings
from devices.protocol import Channel, device_filter
from ingest.main import run as run_ingest
from simulator.fleet import run_fleet
from simulator.households import demo_devices

DEVICE_COUNT = 50
STORE_TIMEOUT_S = 60.0


class Observer:
    """Subscribes to every device's telemetry and keeps each reading it sees."""

    def __init__(self, settings: Settings) -> None:
        assert settings.mqtt_url is not None
        self.readings: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        endpoint = MqttEndpoint.from_url(settings.mqtt_url)
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-observer")
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(endpoint.host, endpoint.port)
        self._client.subscribe(device_filter(settings.mqtt_topic_prefix, Channel.TELEMETRY), 1)
        self._client.loop_start()
        assert self._subscribed.wait(10), "observer could not subscribe"

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        uid = message.topic.split("/")[3]
        body = json.loads(message.payload)
        with self._lock:
            for reading in body.get("readings", [body]):
                self.readings[uid][reading["seq"]] = reading

    def total(self) -> int:
        """How many distinct (device, seq) readings were published."""
        with self._lock:
            return sum(len(by_seq) for by_seq in self.readings.values())

    def latest_values(self, uid: str) -> dict[str, Any]:
        """Per metric, the value of the reading with the newest device time."""
        latest: dict[str, tuple[datetime, Any]] = {}
        with self._lock:
            for reading in self.readings[uid].values():
                ts = datetime.fromisoformat(reading["ts"].replace("Z", "+00:00"))
                for metric, value in reading["metrics"].items():
                    if metric not in latest or ts >= latest[metric][0]:
                        latest[metric] = (ts, value)
        return {metric: value for metric, (_, value) in latest.items()}

    def close(self) -> None:
        """Disconnect."""
        self._client.loop_stop()
        self._client.disconnect()


def _stored_readings(db: Any) -> int:
    return int(db.execute("SELECT count(*) AS n FROM telemetry").fetchone()["n"])


def _operator_token(client: TestClient, email: str, password: str, totp_secret: str) -> str:
    step = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert step.status_code == 200, step.text
    assert step.json()["status"] == "mfa_required"
    headers = {"Authorization": f"Bearer {step.json()['mfa_token']}"}
    done = client.post(
        "/api/v1/auth/mfa/verify", json={"code": pyotp.TOTP(totp_secret).now()}, headers=headers
    )
    assert done.status_code == 200, done.text
    return str(done.json()["access_token"])


@pytest.mark.slow
def test_fifty_devices_flow_through_broker_ingest_database_and_api(
    settings: Settings, db: Any
) -> None:
    seed = seed_demo(settings, DEVICE_COUNT)
    assert len(seed.devices) == DEVICE_COUNT == len(demo_devices(DEVICE_COUNT))
    observer = Observer(settings)
    stop_ingest = threading.Event()
    ingest = threading.Thread(target=run_ingest, args=(settings, stop_ingest), daemon=True)
    ingest.start()
    try:
        assert settings.mqtt_url is not None
        stats = run_fleet(
            settings.mqtt_url,
            settings.mqtt_topic_prefix,
            seed.devices,
            speed=None,
            start=datetime.now(UTC) - timedelta(hours=2),
            duration=timedelta(hours=1),
            interval=timedelta(minutes=5),
            stop=threading.Event(),
        )
        assert stats.readings >= DEVICE_COUNT * 10, stats.as_dict()
        deadline = time.monotonic() + STORE_TIMEOUT_S
        while _stored_readings(db) < observer.total() and time.monotonic() < deadline:
            time.sleep(0.2)
        # Every published reading is stored, exactly once.
        assert observer.total() == stats.readings
        assert _stored_readings(db) == observer.total()
        duplicates = db.execute(
            "SELECT count(*) AS n FROM (SELECT device_id, seq FROM telemetry "
            "GROUP BY device_id, seq HAVING count(*) > 1) d"
        ).fetchone()["n"]
        assert duplicates == 0
        for table in ("ingest_dead_letters", "ingest_quarantine", "ingest_seq_gaps"):
            assert db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0, table
    finally:
        stop_ingest.set()
        ingest.join(timeout=15)
        observer.close()

    operator = next(login for login in seed.logins if login.role == "operator")
    assert operator.totp_secret is not None
    with TestClient(create_app(settings)) as client:
        token = _operator_token(client, operator.email, operator.password, operator.totp_secret)
        for device in seed.devices:
            response = client.get(
                f"/api/v1/devices/{device.uid}/twin", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
            reported = {name: item["v"] for name, item in response.json()["reported"].items()}
            expected = observer.latest_values(device.uid)
            assert reported.keys() == expected.keys(), device.uid
            for metric, value in expected.items():
                assert reported[metric] == pytest.approx(value), (device.uid, metric)
