"""Status and command acks applied the way ingest applies them, inside one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from devices.protocol import CommandAck, DeviceStatus
from devices.uplink import apply_command_ack, apply_status

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def _device(db: Any, uid: str = "ev-1") -> int:
    db.execute("INSERT INTO product_models (id, spec) VALUES ('ev', '{}') ON CONFLICT DO NOTHING")
    row = db.execute(
        "INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, 'ev') RETURNING id",
        (uid, f"S-{uid}"),
    ).fetchone()
    return int(row["id"])


def _command(db: Any, device_id: int, command_id: str = "c1") -> None:
    db.execute(
        """
        INSERT INTO device_commands (command_id, device_id, name, expires_at)
        VALUES (%s, %s, 'lock', %s)
        """,
        (command_id, device_id, T0 + timedelta(minutes=5)),
    )


def _twin(db: Any, device_id: int) -> dict[str, Any]:
    return dict(
        db.execute("SELECT * FROM device_twins WHERE device_id = %s", (device_id,)).fetchone()
    )


def test_status_changes_are_recorded_once_and_in_receive_order(db: Any) -> None:
    device_id = _device(db)
    online = DeviceStatus(state="online", ts=T0, firmware="2.1.0")
    apply_status(db, device_id, online, T0)
    apply_status(db, device_id, online, T0 + timedelta(seconds=1))  # retained redelivery
    apply_status(db, device_id, DeviceStatus(state="offline"), T0 + timedelta(minutes=1))
    # A late-arriving online from before the offline must not flip the state back.
    apply_status(db, device_id, online, T0 + timedelta(seconds=30))
    twin = _twin(db, device_id)
    assert twin["connection"] == "offline"
    assert twin["connection_changed_at"] == T0 + timedelta(minutes=1)
    assert twin["last_seen"] == T0 + timedelta(seconds=1)
    history = db.execute(
        "SELECT state FROM device_connection_events WHERE device_id = %s ORDER BY received_at",
        (device_id,),
    ).fetchall()
    assert [h["state"] for h in history] == ["online", "offline"]
    firmware = db.execute("SELECT firmware FROM devices WHERE id = %s", (device_id,)).fetchone()
    assert firmware["firmware"] == "2.1.0"


def test_command_ack_moves_status_forward_and_final_states_stay(db: Any) -> None:
    device_id = _device(db)
    _command(db, device_id)
    apply_command_ack(db, device_id, CommandAck(command_id="c1", status="accepted", ts=T0), T0)
    row = db.execute("SELECT * FROM device_commands WHERE command_id = 'c1'").fetchone()
    assert (row["status"], row["delivered_at"], row["finished_at"]) == ("delivered", T0, None)
    done_at = T0 + timedelta(seconds=5)
    apply_command_ack(db, device_id, CommandAck(command_id="c1", status="done", ts=T0), done_at)
    late = CommandAck(command_id="c1", status="failed", ts=T0, detail="late")
    apply_command_ack(db, device_id, late, done_at + timedelta(seconds=1))
    row = db.execute("SELECT * FROM device_commands WHERE command_id = 'c1'").fetchone()
    assert (row["status"], row["finished_at"], row["detail"]) == ("acked", done_at, None)


def test_ack_from_another_device_does_not_touch_the_command(db: Any) -> None:
    owner_id = _device(db, "ev-1")
    other_id = _device(db, "ev-2")
    _command(db, owner_id)
    apply_command_ack(db, other_id, CommandAck(command_id="c1", status="done", ts=T0), T0)
    apply_command_ack(db, other_id, CommandAck(command_id="nope", status="done", ts=T0), T0)
    row = db.execute("SELECT status FROM device_commands WHERE command_id = 'c1'").fetchone()
    assert row["status"] == "pending"


def test_rejected_command_is_failed_with_detail(db: Any) -> None:
    device_id = _device(db)
    _command(db, device_id)
    nack = CommandAck(command_id="c1", status="rejected", ts=T0, detail="door open")
    apply_command_ack(db, device_id, nack, T0)
    row = db.execute(
        "SELECT status, detail FROM device_commands WHERE command_id = 'c1'"
    ).fetchone()
    assert (row["status"], row["detail"]) == ("failed", "door open")
