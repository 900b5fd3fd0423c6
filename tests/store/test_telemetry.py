"""The telemetry writer: slots, value round-trips, dedup on COPY, partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devices.catalog import ProductModel, builtin_models
from devices.catalog_sync import sync_product_models
from store.telemetry import (
    EventRow,
    TelemetryRow,
    ensure_partitions,
    ensure_slots,
    insert_events,
    insert_telemetry,
    load_slots,
)


@pytest.fixture
def washer(db) -> tuple[ProductModel, int]:
    sync_product_models(db)
    row = db.execute(
        "INSERT INTO devices (uid, serial, model_id) VALUES ('w1', 'SN-w1', 'washing_machine') "
        "RETURNING id"
    ).fetchone()
    return builtin_models()["washing_machine"], row["id"]


def test_values_of_every_type_round_trip_through_the_database(db, washer):
    model, device_id = washer
    slots = ensure_slots(db, model)
    metrics = {
        "phase": "spin",
        "remaining_min": 12,
        "water_flow_lpm": 0.25,
        "leak_detected": True,
        "door_locked": False,
        "cycles_since_drum_clean": 99_999,
    }
    now = datetime.now(UTC)
    with db.transaction():
        stored = insert_telemetry(db, [TelemetryRow(device_id, now, 1, now, slots.encode(metrics))])
    assert stored == {(device_id, now, 1)}
    vals = db.execute("SELECT vals FROM telemetry").fetchone()["vals"]
    decoded = load_slots(db, model.id).decode(vals)
    assert decoded == metrics
    assert type(decoded["remaining_min"]) is int and type(decoded["leak_detected"]) is bool


def test_slots_are_append_only_when_a_model_grows(db, washer):
    model, _ = washer
    first = ensure_slots(db, model)
    phase = model.metrics["phase"].model_copy(
        update={"values": ("eco", *model.metrics["phase"].values)}
    )
    grown = model.model_copy(
        update={"metrics": {"spin_rpm": model.metrics["power_w"], **model.metrics, "phase": phase}}
    )
    second = ensure_slots(db, grown)
    for name, slot in first.slots.items():
        assert second.slots[name].slot == slot.slot
        assert second.slots[name].enum_values[: len(slot.enum_values)] == slot.enum_values
    assert second.slots["spin_rpm"].slot == first.width + 1
    assert second.slots["phase"].enum_values[-1] == "eco"
    assert ensure_slots(db, grown) == second  # idempotent


def test_redelivered_rows_are_not_stored_twice(db, washer):
    model, device_id = washer
    slots = ensure_slots(db, model)
    now = datetime.now(UTC)
    rows = [
        TelemetryRow(device_id, now - timedelta(seconds=s), s, now, slots.encode({"power_w": s}))
        for s in range(5)
    ]
    with db.transaction():
        assert len(insert_telemetry(db, rows)) == 5
    with db.transaction():
        assert insert_telemetry(db, rows[:3] + rows[:1]) == set()
    assert db.execute("SELECT count(*) AS n FROM telemetry").fetchone()["n"] == 5
    event = EventRow(device_id, now, 9, now, "cycle_finished", {"kwh": 1.5, "ok": True})
    with db.transaction():
        assert len(insert_events(db, [event])) == 1
        assert insert_events(db, [event]) == set()


def test_partitions_are_created_ahead_and_rows_leave_the_default_partition(db, washer):
    model, device_id = washer
    slots = ensure_slots(db, model)
    later = datetime.now(UTC) + timedelta(days=20)
    with db.transaction():
        insert_telemetry(
            db, [TelemetryRow(device_id, later, 1, later, slots.encode({"power_w": 1}))]
        )
    where = "SELECT tableoid::regclass::text AS part FROM telemetry"
    assert db.execute(where).fetchone()["part"] == "telemetry_default"
    assert ensure_partitions(db, 25, 1) >= 1
    assert db.execute(where).fetchone()["part"] == f"telemetry_p{later:%Y%m%d}"
    assert ensure_partitions(db, 25, 1) == 0  # idempotent
