"""The read-only reporting queries the dashboard is built on, against a fresh database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devices import reporting as devices_reporting
from devices.catalog import builtin_models
from devices.catalog_sync import sync_product_models
from ingest import reporting as ingest_reporting
from store.telemetry import TelemetryRow, ensure_slots, insert_telemetry


def _device(db: Any, uid: str, *, seen_ago_s: float | None, connection: str = "online") -> int:
    row = db.execute(
        "INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, 'ev') RETURNING id",
        (uid, f"SN-{uid}"),
    ).fetchone()
    if seen_ago_s is not None:
        db.execute(
            """INSERT INTO device_twins (device_id, last_seen, connection)
               VALUES (%s, now() - make_interval(secs => %s), %s)""",
            (row["id"], seen_ago_s, connection),
        )
    return int(row["id"])


@pytest.fixture
def ev_db(db: Any) -> Any:
    sync_product_models(db)
    return db


def test_online_status_and_current_ownership(ev_db: Any) -> None:
    _device(ev_db, "recent", seen_ago_s=10)
    _device(ev_db, "stale", seen_ago_s=3600)
    _device(ev_db, "said-offline", seen_ago_s=10, connection="offline")
    _device(ev_db, "never-seen", seen_ago_s=None)
    [ev] = devices_reporting.fleet_status_by_model(ev_db, online_window_s=300)
    assert (ev.model_id, ev.online, ev.offline) == ("ev", 1, 3)

    # Ownership: a customer sees only devices they currently have.
    did = _device(ev_db, "sold-car", seen_ago_s=5)
    old, new = (
        int(ev_db.execute("INSERT INTO customers DEFAULT VALUES RETURNING id").fetchone()["id"])
        for _ in range(2)
    )
    ev_db.execute(
        """INSERT INTO device_ownerships (device_id, customer_id, role, ended_at)
                     VALUES (%s, %s, 'owner', now())""",
        (did, old),
    )
    ev_db.execute(
        """INSERT INTO device_ownerships (device_id, customer_id, role)
                     VALUES (%s, %s, 'owner')""",
        (did, new),
    )
    assert devices_reporting.customer_devices(ev_db, old) == []
    assert devices_reporting.device_detail(ev_db, "sold-car", customer_id=old) is None
    assert [d.uid for d in devices_reporting.customer_devices(ev_db, new)] == ["sold-car"]


def test_ingest_health_rate_and_lag_from_recent_telemetry(ev_db: Any) -> None:
    did = _device(ev_db, "car", seen_ago_s=5)
    slots = ensure_slots(ev_db, builtin_models()["ev"])
    now = datetime.now(UTC)
    ages = [5, 20, 40, 90, 4000]  # three inside the last minute
    rows = [
        TelemetryRow(
            did,
            now - timedelta(seconds=a),
            i,
            now - timedelta(seconds=a),
            slots.encode({"soc_pct": 50.0}),
        )
        for i, a in enumerate(ages)
    ]
    with ev_db.transaction():
        insert_telemetry(ev_db, rows)
    health = ingest_reporting.ingest_health(ev_db, rate_window_s=60)
    assert health.messages_per_s == pytest.approx(3 / 60)
    assert health.lag_s is not None and 4 <= health.lag_s < 60


def test_ingest_lag_falls_back_to_twins_when_nothing_is_recent(ev_db: Any) -> None:
    _device(ev_db, "quiet", seen_ago_s=7200)
    health = ingest_reporting.ingest_health(ev_db)
    assert health.messages_per_s == 0
    assert health.lag_s is not None and 7100 < health.lag_s < 7400


def test_device_query_rejects_unsafe_input() -> None:
    with pytest.raises(ValueError):
        devices_reporting.DeviceQuery(sort_by="password_hash")
    with pytest.raises(ValueError):
        devices_reporting.DeviceQuery(page_size=10_000)
    with pytest.raises(ValueError):
        devices_reporting.DeviceQuery(page=-1)
