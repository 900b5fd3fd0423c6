"""Time-bucket queries and latest readings over stored telemetry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices.catalog import builtin_models
from devices.catalog_sync import sync_product_models
from store.telemetry import TelemetryRow, ensure_slots, insert_telemetry
from store.timeseries import SeriesQueryError, bucketed_series, latest_readings

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def device_id(db) -> int:
    sync_product_models(db)
    device = db.execute(
        "INSERT INTO devices (uid, serial, model_id) VALUES ('w1', 'SN-w1', 'washing_machine') "
        "RETURNING id"
    ).fetchone()["id"]
    slots = ensure_slots(db, builtin_models()["washing_machine"])
    rows = []
    for minute in range(10):  # power 0..9 W, leak on odd minutes, phase wash then rinse
        metrics = {
            "power_w": float(minute),
            "leak_detected": minute % 2 == 1,
            "phase": "wash" if minute < 5 else "rinse",
        }
        ts = START + timedelta(minutes=minute)
        rows.append(TelemetryRow(device, ts, minute, ts, slots.encode(metrics)))
    with db.transaction():
        insert_telemetry(db, rows)
    return int(device)


def test_buckets_give_min_avg_max_and_last(db, device_id):
    series = bucketed_series(
        db,
        device_id,
        ["power_w", "leak_detected", "phase"],
        START,
        START + timedelta(minutes=10),
        timedelta(minutes=5),
    )
    power = series["power_w"]
    assert [(b.bucket, b.count, b.min, b.avg, b.max) for b in power] == [
        (START, 5, 0.0, 2.0, 4.0),
        (START + timedelta(minutes=5), 5, 5.0, 7.0, 9.0),
    ]
    assert [b.avg for b in series["leak_detected"]] == [0.4, 0.6]  # share of true
    assert series["leak_detected"][0].max is True
    assert [b.last for b in series["phase"]] == ["wash", "rinse"]


def test_latest_readings_are_newest_first_and_decoded(db, device_id):
    latest = latest_readings(db, device_id, limit=2, metrics=["phase", "power_w"])
    assert [r.seq for r in latest] == [9, 8]
    assert latest[0].metrics == {"phase": "rinse", "power_w": 9.0}
    older = latest_readings(db, device_id, limit=1, before=latest[1].ts)
    assert older[0].seq == 7


@pytest.mark.parametrize(
    ("start", "end", "bucket", "metrics"),
    [
        (START, START, timedelta(minutes=1), ["power_w"]),
        (START.replace(tzinfo=None), START + timedelta(hours=1), timedelta(minutes=1), ["power_w"]),
        (START, START + timedelta(days=30), timedelta(seconds=1), ["power_w"]),
        (START, START + timedelta(hours=1), timedelta(minutes=1), ["no_such_metric"]),
        (START, START + timedelta(hours=1), timedelta(0), ["power_w"]),
    ],
)
def test_bad_queries_are_refused_clearly(db, device_id, start, end, bucket, metrics):
    with pytest.raises(SeriesQueryError):
        bucketed_series(db, device_id, metrics, start, end, bucket)


def test_unknown_device_and_limits_are_refused(db, device_id):
    with pytest.raises(SeriesQueryError):
        latest_readings(db, device_id + 1000)
    with pytest.raises(SeriesQueryError):
        latest_readings(db, device_id, limit=100_000)
