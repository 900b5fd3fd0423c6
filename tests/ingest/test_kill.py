"""kill -9 of ingest before and after commit, repeated: nothing lost, nothing doubled."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import Channel, device_topic
from tests.ingest.conftest import ago, reading_payload, register_devices, wait_until

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5

MESSAGES_PER_DEVICE = 200
ROUNDS = (
    "before_commit:1",
    "after_commit:1",
    "before_commit:3",
    "after_commit:2",
    "random",
    "random",
)


def _start(settings, tmp_path: Path, kill: str) -> subprocess.Popen[bytes]:
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "KIZUNA_ENV": "development",
        "KIZUNA_DATABASE_URL": settings.database_url,
        "KIZUNA_MQTT_URL": settings.mqtt_url,
        "KIZUNA_MQTT_TOPIC_PREFIX": settings.mqtt_topic_prefix,
        "KIZUNA_INGEST__CLIENT_ID": settings.ingest.client_id,
        "KIZUNA_INGEST__BATCH_MAX_MESSAGES": "40",
        "KIZUNA_INGEST__BATCH_MAX_WAIT_MS": "20",
        "KIZUNA_TEST_KILL": kill,
        "KIZUNA_TEST_READY": str(ready),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.ingest.ingest_child"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: ready.exists() or child.poll() is not None, timeout_s=20)
    return child


def _publish_all(settings, uids: list[str]) -> None:
    port = int(settings.mqtt_url.rsplit(":", 1)[1])
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"pub-{uids[0]}", protocol=mqtt.MQTTv5
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for seq in range(1, MESSAGES_PER_DEVICE + 1):
        for uid in uids:
            topic = device_topic(settings.mqtt_topic_prefix, uid, Channel.TELEMETRY)
            payload = reading_payload(seq, {"power_w": float(seq)}, ago(1000 - seq))
            infos.append(client.publish(topic, payload, qos=1))
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()


def test_kill_9_before_and_after_commit_loses_and_doubles_nothing(settings, db, tmp_path):
    devices = register_devices(settings.database_url, "washing_machine", 3)
    uids = list(devices)
    first = _start(settings, tmp_path, "none:0")  # creates the persistent session
    first.terminate()
    first.wait(10)
    _publish_all(settings, uids)  # queued by the broker for the ingest session
    for kill in ROUNDS:
        child = _start(settings, tmp_path, kill)
        if kill == "random":
            time.sleep(random.uniform(0.05, 0.4))
            child.kill()
        assert child.wait(20) == -9, f"round {kill} did not die by SIGKILL"
    last = _start(settings, tmp_path, "none:0")
    try:
        expected = MESSAGES_PER_DEVICE * len(uids)
        wait_until(
            lambda: db.execute("SELECT count(*) AS n FROM telemetry").fetchone()["n"] >= expected,
            timeout_s=30,
        )
        time.sleep(0.5)  # anything doubled would show up now
        rows = db.execute(
            "SELECT device_id, count(*) AS n, count(DISTINCT seq) AS seqs, min(seq) AS lo, "
            "max(seq) AS hi FROM telemetry GROUP BY device_id"
        ).fetchall()
        assert len(rows) == len(uids)
        for row in rows:
            assert (row["n"], row["seqs"], row["lo"], row["hi"]) == (
                MESSAGES_PER_DEVICE,
                MESSAGES_PER_DEVICE,
                1,
                MESSAGES_PER_DEVICE,
            )
        twins = db.execute("SELECT last_seq FROM device_twins").fetchall()
        assert [t["last_seq"] for t in twins] == [MESSAGES_PER_DEVICE] * len(uids)
        assert db.execute("SELECT count(*) AS n FROM ingest_seq_gaps").fetchone()["n"] == 0
        assert db.execute("SELECT count(*) AS n FROM ingest_dead_letters").fetchone()["n"] == 0
    finally:
        last.terminate()
        last.wait(10)
