"""Database faults: connections killed mid-stream, a database too slow to keep up."""

from __future__ import annotations

import threading
import time

import pytest

from tests.ingest.conftest import ago, register_devices, sample, wait_until

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5

MESSAGES = 300


def _publish(device, count: int) -> None:
    for seq in range(1, count + 1):
        device.reading(seq, {"power_w": float(seq)}, ago(count - seq + 1))


def test_killed_database_connections_are_retried_without_loss_or_doubles(
    settings, db, start_ingest, make_device
):
    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    retries_before = sample("kizuna_ingest_batch_retries_total")
    ingest = start_ingest(batch_max_messages=10)
    done = threading.Event()

    def kill_connections() -> None:
        while not done.is_set():
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            time.sleep(0.05)

    killer = threading.Thread(target=kill_connections)
    killer.start()
    try:
        _publish(make_device(uid), MESSAGES)
        time.sleep(0.3)
    finally:
        done.set()
        killer.join()
    wait_until(
        lambda: ingest.worker.totals.readings_stored + ingest.worker.totals.duplicates >= MESSAGES
    )
    rows = db.execute(
        "SELECT count(*) AS n, count(DISTINCT seq) AS d FROM telemetry WHERE device_id = %s",
        (device_id,),
    ).fetchone()
    assert (rows["n"], rows["d"]) == (MESSAGES, MESSAGES)
    assert sample("kizuna_ingest_batch_retries_total") > retries_before  # the fault did hit
    assert db.execute("SELECT count(*) AS n FROM ingest_dead_letters").fetchone()["n"] == 0


def test_slow_database_is_backpressure_not_memory(settings, db, start_ingest, make_device):
    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    limit = 50
    ingest = start_ingest(receive_maximum=limit, batch_max_messages=20)
    peak = 0
    with db.transaction():
        db.execute("LOCK TABLE device_twins IN EXCLUSIVE MODE")  # every batch now waits
        _publish(make_device(uid), MESSAGES)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            peak = max(peak, ingest.worker.pending)
            time.sleep(0.01)
        stored_while_locked = db.execute(
            "SELECT count(*) AS n FROM telemetry WHERE device_id = %s", (device_id,)
        ).fetchone()["n"]
    assert stored_while_locked == 0
    assert 0 < peak <= limit, f"{peak} messages held in memory with receive maximum {limit}"
    wait_until(lambda: ingest.worker.totals.readings_stored == MESSAGES)
    assert ingest.worker.totals.duplicates == 0
