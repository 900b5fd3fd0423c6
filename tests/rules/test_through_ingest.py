"""Through the real broker: MQTT → ingest (rules step in its transaction) → moments, alerts; the
scheduler component fires a timer with no new data."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import Connection
from psycopg.rows import DictRow

from app.settings import Settings
from rules.main import run as run_scheduler
from rules.service import install_builtin_packs
from rules.step import make_step
from tests.ingest.conftest import register_devices, wait_until

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5


def test_readings_over_mqtt_fire_pack_rules_once_and_the_scheduler_fires_timers(
    settings: Settings,
    db: Connection[DictRow],
    start_ingest: Callable[..., Any],
    make_device: Callable[[str], Any],
) -> None:
    assert settings.database_url is not None
    [(uid, device_id)] = register_devices(settings.database_url, "refrigerator", 1).items()
    install_builtin_packs(db)
    start_ingest(steps=(make_step(),))
    fridge = make_device(uid)
    now = datetime.now(UTC)
    # Warm since 29 min 52 s ago: the 30-minute timer is due in 8 s, with no further readings.
    fridge.reading(1, {"door_open": False, "fridge_temp_c": 9.5}, now - timedelta(seconds=1792))
    fridge.reading(2, {"door_open": True, "fridge_temp_c": 9.5}, now - timedelta(seconds=180))
    fridge.reading(3, {"door_open": True, "fridge_temp_c": 9.5}, now - timedelta(seconds=60))
    fridge.reading(3, {"door_open": True, "fridge_temp_c": 9.5}, now - timedelta(seconds=60))
    wait_until(
        lambda: db.execute("SELECT 1 FROM moments WHERE device_id = %s", (device_id,)).fetchone(),
        timeout_s=30,
    )
    stop = threading.Event()
    scheduler = threading.Thread(
        target=run_scheduler,
        args=(
            settings.model_copy(
                update={"rules": settings.rules.model_copy(update={"scheduler_interval_s": 0.2})}
            ),
            stop,
        ),
        daemon=True,
    )
    scheduler.start()
    try:
        kinds = wait_until(
            lambda: (
                {
                    r["kind"]
                    for r in db.execute(
                        "SELECT kind FROM moments WHERE device_id = %s", (device_id,)
                    )
                }
                >= {"refrigerator.door_left_open", "refrigerator.too_warm"}
            ),
            timeout_s=30,
        )
        assert kinds
    finally:
        stop.set()
        scheduler.join(10)
    rows = db.execute(
        "SELECT kind, occurred_at FROM moments WHERE device_id = %s ORDER BY occurred_at",
        (device_id,),
    ).fetchall()
    assert [r["kind"] for r in rows] == [
        "refrigerator.too_warm",
        "refrigerator.door_left_open",
    ] or [r["kind"] for r in rows] == ["refrigerator.door_left_open", "refrigerator.too_warm"]
    assert len(rows) == 2  # the duplicate seq 2 changed nothing
    door = next(r for r in rows if r["kind"] == "refrigerator.door_left_open")
    warm = next(r for r in rows if r["kind"] == "refrigerator.too_warm")
    assert door["occurred_at"] == now - timedelta(seconds=60)
    assert warm["occurred_at"] == now - timedelta(seconds=1792) + timedelta(minutes=30)
    assert db.execute("SELECT count(*) AS n FROM alerts WHERE status = 'active'").fetchone() == {
        "n": 2
    }
