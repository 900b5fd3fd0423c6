"""Ingest end to end through the real broker and database: store, dedup, order, gaps, skew."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devices.protocol import Channel
from ingest.records import StoredBatch
from store.timeseries import latest_readings
from tests.ingest.conftest import WASHER_OK, ago, reading_payload, register_devices, wait_until

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5


def _count(db: Any, sql: str, *args: Any) -> int:
    return int(db.execute(sql, args).fetchone()["n"])


def test_readings_are_stored_with_twin_and_values_round_trip(
    settings, db, start_ingest, make_device
):
    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    start_ingest()
    device = make_device(uid)
    for seq in range(1, 6):
        device.reading(seq, WASHER_OK | {"remaining_min": 50 - seq}, ago(10 - seq))
    wait_until(
        lambda: (
            _count(db, "SELECT count(*) AS n FROM telemetry WHERE device_id = %s", device_id) == 5
        )
    )
    newest = latest_readings(db, device_id, limit=1)[0]
    assert newest.seq == 5
    assert newest.metrics == WASHER_OK | {"remaining_min": 45}  # booleans and enums round-trip
    twin = db.execute("SELECT * FROM device_twins WHERE device_id = %s", (device_id,)).fetchone()
    assert twin["last_seq"] == 5
    assert twin["reported"]["remaining_min"]["v"] == 45
    assert twin["reported"]["phase"]["v"] == "wash"
    assert twin["last_seen"] is not None


def test_batch_message_events_status_and_steps_share_the_transaction(
    settings, db, start_ingest, make_device
):
    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    seen: list[StoredBatch] = []

    def step(conn: Any, batch: StoredBatch) -> None:
        count = conn.execute(
            "SELECT count(*) AS n FROM telemetry WHERE device_id = %s", (device_id,)
        ).fetchone()["n"]
        assert count >= len(batch.readings)  # the step sees the batch's own rows
        seen.append(batch)

    start_ingest(steps=(step,))
    device = make_device(uid)
    readings = [
        {"seq": s, "ts": ago(30 - s).isoformat(), "metrics": {"power_w": float(s)}}
        for s in (1, 2, 3)
    ]
    device.raw(device.topic(Channel.TELEMETRY), json.dumps({"readings": readings}).encode())
    event = {"seq": 4, "ts": ago(1).isoformat(), "event": "cycle_finished", "data": {"kwh": 1.5}}
    device.raw(device.topic(Channel.EVENTS), json.dumps(event).encode())
    device.raw(device.topic(Channel.STATUS), b'{"state": "online", "firmware": "1.2.3"}')
    wait_until(
        lambda: (
            db.execute(
                "SELECT connection FROM device_twins WHERE device_id = %s", (device_id,)
            ).fetchone()
            == {"connection": "online"}
        )
    )
    wait_until(lambda: _count(db, "SELECT count(*) AS n FROM device_events") == 1)
    assert _count(db, "SELECT count(*) AS n FROM telemetry") == 3
    stored = [r.seq for b in seen for r in b.readings]
    assert sorted(stored) == [1, 2, 3]
    assert [e.event for b in seen for e in b.events] == ["cycle_finished"]
    assert _count(db, "SELECT count(*) AS n FROM ingest_seq_gaps") == 0


def test_duplicates_are_counted_not_stored_and_steps_see_them_once(
    settings, db, start_ingest, make_device
):
    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    seen: list[int] = []
    ingest = start_ingest(steps=(lambda conn, batch: seen.extend(r.seq for r in batch.readings),))
    device = make_device(uid)
    ts = ago(5)
    for _ in range(3):
        device.reading(1, WASHER_OK, ts)  # an exact redelivery, three times
    device.reading(2, WASHER_OK, ago(4))
    wait_until(lambda: ingest.worker.totals.messages >= 4)
    assert _count(db, "SELECT count(*) AS n FROM telemetry WHERE device_id = %s", device_id) == 2
    assert ingest.worker.totals.duplicates == 2
    assert sorted(seen) == [1, 2]


def test_out_of_order_readings_keep_newest_twin_by_device_time(
    settings, db, start_ingest, make_device
):
    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    ingest = start_ingest()
    device = make_device(uid)
    device.reading(2, {"power_w": 200.0, "phase": "rinse"}, ago(10))
    wait_until(lambda: ingest.worker.totals.readings_stored == 1)
    device.reading(1, {"power_w": 100.0, "drum_temp_c": 30.0}, ago(20))  # late, older
    wait_until(lambda: ingest.worker.totals.readings_stored == 2)
    twin = db.execute(
        "SELECT reported, last_seq FROM device_twins WHERE device_id = %s", (device_id,)
    ).fetchone()
    assert twin["reported"]["power_w"]["v"] == 200.0  # the later device time wins
    assert twin["reported"]["drum_temp_c"]["v"] == 30.0  # a metric only the late one had
    assert twin["last_seq"] == 2


def test_seq_gaps_are_recorded_and_shrink_when_late_messages_arrive(
    settings, db, start_ingest, make_device
):
    from ingest.queries import open_gaps

    uid, _ = next(iter(register_devices(settings.database_url, "washing_machine", 1).items()))
    ingest = start_ingest()
    device = make_device(uid)
    device.reading(1, {"power_w": 1.0}, ago(60))
    wait_until(lambda: ingest.worker.totals.readings_stored == 1)
    device.reading(7, {"power_w": 7.0}, ago(50))
    wait_until(lambda: ingest.worker.totals.readings_stored == 2)
    gaps = open_gaps(db, uid)
    assert [(g.first_seq, g.last_seq, g.missing) for g in gaps] == [(2, 6, 5)]
    device.reading(4, {"power_w": 4.0}, ago(55))
    wait_until(lambda: ingest.worker.totals.readings_stored == 3)
    gaps = sorted(open_gaps(db, uid), key=lambda g: g.first_seq)
    assert [(g.first_seq, g.last_seq) for g in gaps] == [(2, 3), (5, 6)]


def test_clock_skew_is_quarantined_with_reason_and_received_time(
    settings, db, start_ingest, make_device
):
    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    ingest = start_ingest()
    device = make_device(uid)
    far_future = datetime.now(UTC) + timedelta(days=400)
    device.reading(1, {"power_w": 1.0}, far_future)
    device.reading(2, {"power_w": 2.0}, datetime(1970, 1, 1, tzinfo=UTC))
    device.reading(3, {"power_w": 3.0}, datetime(2000, 1, 1, tzinfo=UTC))
    device.reading(4, {"power_w": 4.0}, datetime.now(UTC) - timedelta(days=90))
    device.reading(5, {"power_w": 5.0}, ago(1))
    wait_until(lambda: ingest.worker.totals.messages >= 5)
    rows = db.execute(
        "SELECT seq, reason, received_at FROM ingest_quarantine WHERE device_id = %s ORDER BY seq",
        (device_id,),
    ).fetchall()
    assert [(r["seq"], r["reason"]) for r in rows] == [
        (1, "clock_future"),
        (2, "clock_unset"),
        (3, "clock_unset"),
        (4, "clock_too_old"),
    ]
    assert all(r["received_at"] > datetime.now(UTC) - timedelta(minutes=1) for r in rows)
    assert _count(db, "SELECT count(*) AS n FROM telemetry WHERE device_id = %s", device_id) == 1
    assert _count(db, "SELECT count(*) AS n FROM ingest_seq_gaps") == 0  # they arrived
    assert (
        db.execute(
            "SELECT last_seq FROM device_twins WHERE device_id = %s", (device_id,)
        ).fetchone()["last_seq"]
        == 5
    )


def test_unknown_device_becomes_known_after_registration(settings, db, start_ingest, make_device):
    ingest = start_ingest(unknown_device_cache_ttl_s=0.0)
    device = make_device("washer-not-yet")
    device.raw(device.topic(Channel.TELEMETRY), reading_payload(1, {"power_w": 1.0}))
    wait_until(lambda: ingest.worker.totals.dead_letters["unknown_device"] == 1)
    assert register_devices(settings.database_url, "washing_machine", 0) == {}
    db.execute(
        "INSERT INTO devices (uid, serial, model_id) VALUES ('washer-not-yet', 'SN-x', "
        "'washing_machine')"
    )
    device.raw(device.topic(Channel.TELEMETRY), reading_payload(2, {"power_w": 2.0}))
    wait_until(lambda: ingest.worker.totals.readings_stored == 1)


def test_composition_root_runs_until_stopped_and_reports_health(settings, db, make_device):
    import threading
    import urllib.request

    from app.embedded import free_port
    from ingest import health
    from ingest.main import run

    port = free_port()
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"metrics_port": port})}
    )

    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(settings, stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: (h := health.current()) is not None and h.ok)
        make_device(uid).reading(1, WASHER_OK, ago(1))
        wait_until(
            lambda: (
                _count(db, "SELECT count(*) AS n FROM telemetry WHERE device_id = %s", device_id)
                == 1
            )
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = page.read().decode()
        assert "kizuna_ingest_readings_stored_total" in text
        assert "kizuna_ingest_broker_connected 1.0" in text
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def test_a_hand_edited_twin_cannot_make_a_redelivery_stored_twice_or_dead_lettered(
    settings, db, start_ingest, make_device
):
    uid, device_id = next(
        iter(register_devices(settings.database_url, "washing_machine", 1).items())
    )
    ingest = start_ingest()
    device = make_device(uid)
    ts = ago(5)
    device.reading(1, WASHER_OK, ts)
    wait_until(lambda: ingest.worker.totals.readings_stored == 1)
    db.execute("UPDATE device_twins SET last_seq = NULL WHERE device_id = %s", (device_id,))
    device.reading(1, WASHER_OK, ts)  # looks new to the fast path; the database knows better
    wait_until(lambda: ingest.worker.totals.duplicates == 1)
    assert _count(db, "SELECT count(*) AS n FROM telemetry") == 1
    assert _count(db, "SELECT count(*) AS n FROM ingest_dead_letters") == 0


def test_writer_lanes_keep_each_device_in_one_lane_and_in_order(
    settings, db, start_ingest, make_device
):
    devices = register_devices(settings.database_url, "washing_machine", 6)
    seen: list[tuple[str, int, int]] = []  # (thread, device_id, seq) in commit order per lane

    def step(conn: Any, batch: StoredBatch) -> None:
        seen.extend((threading.current_thread().name, r.device_id, r.seq) for r in batch.readings)

    ingest = start_ingest(steps=(step,), writer_lanes=3, batch_max_messages=4)
    publishers = [make_device(uid) for uid in devices]
    for seq in range(1, 9):
        for device in publishers:
            device.reading(seq, WASHER_OK | {"remaining_min": seq}, ago(60 - seq))
    wait_until(lambda: ingest.worker.totals.readings_stored >= 48)
    lanes_of = {
        device_id: {t for t, d, _ in seen if d == device_id} for device_id in devices.values()
    }
    assert all(len(lanes) == 1 for lanes in lanes_of.values()), lanes_of
    assert len(set().union(*lanes_of.values())) > 1  # the devices were spread over lanes
    for device_id in devices.values():
        assert [s for _, d, s in seen if d == device_id] == list(range(1, 9))
    twins = db.execute("SELECT last_seq, reported FROM device_twins").fetchall()
    assert [t["last_seq"] for t in twins] == [8] * 6
    assert {t["reported"]["remaining_min"]["v"] for t in twins} == {8}
    assert _count(db, "SELECT count(*) AS n FROM telemetry") == 48
