"""The digital twin: reported state, desired state, the delta, and connection state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from devices.catalog_sync import product_model
from devices.downlink import Downlink
from devices.errors import InvalidRequest, NotFound
from devices.models import ConnectionEvent, DesiredUpdate, Twin
from devices.protocol import Channel, DesiredState, device_topic, json_payload

log = structlog.get_logger(__name__)

Conn = Connection[DictRow]


_TWIN_READ = """
SELECT d.id AS device_id, COALESCE(t.reported, '{}') AS reported, t.reported_at,
       COALESCE(t.desired, '{}') AS desired, COALESCE(t.desired_version, 0) AS desired_version,
       t.last_seen, COALESCE(t.connection, 'unknown') AS connection, t.connection_changed_at
FROM devices d LEFT JOIN device_twins t ON t.device_id = d.id
WHERE d.uid = %s
"""


def _twin_row(conn: Conn, uid: str) -> dict[str, Any]:
    row = conn.execute(_TWIN_READ, (uid,)).fetchone()
    if row is None:
        raise NotFound("no such device")
    return row


def _locked_twin_row(conn: Conn, uid: str) -> dict[str, Any]:
    device_id = _twin_row(conn, uid)["device_id"]
    conn.execute(
        "INSERT INTO device_twins (device_id) VALUES (%s) ON CONFLICT DO NOTHING", (device_id,)
    )
    row = conn.execute(
        "SELECT * FROM device_twins WHERE device_id = %s FOR UPDATE", (device_id,)
    ).fetchone()
    assert row is not None
    return row


def delta(reported: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Desired values the device does not report yet (missing or different)."""
    return {
        name: value
        for name, value in desired.items()
        if name not in reported or reported[name].get("v") != value
    }


def is_online(connection: str, last_seen: datetime | None, now: datetime, after_s: int) -> bool:
    """Online when the device said so and was heard from recently (a lost will is not news)."""
    if connection != "online" or last_seen is None:
        return False
    return now - last_seen <= timedelta(seconds=after_s)


def get_twin(conn: Conn, uid: str, now: datetime, offline_after_s: int = 900) -> Twin:
    """The twin of one device."""
    row = _twin_row(conn, uid)
    return Twin(
        uid=uid,
        reported=row["reported"],
        reported_at=row["reported_at"],
        desired=row["desired"],
        desired_version=row["desired_version"],
        delta=delta(row["reported"], row["desired"]),
        connection=row["connection"],
        online=is_online(row["connection"], row["last_seen"], now, offline_after_s),
        last_seen=row["last_seen"],
        connection_changed_at=row["connection_changed_at"],
    )


def _check_desired(conn: Conn, uid: str, update: DesiredUpdate) -> None:
    model_id = conn.execute("SELECT model_id FROM devices WHERE uid = %s", (uid,)).fetchone()
    assert model_id is not None
    model = product_model(conn, model_id["model_id"])
    problems = []
    for name, value in update.values.items():
        spec = model.desired.get(name)
        if spec is None:
            problems.append(f"{name}: not a desired setting of {model.id}")
        elif value is not None and (reason := spec.problem(value)):
            problems.append(f"{name}: {reason}")
    if problems:
        raise InvalidRequest("; ".join(problems))


def set_desired(
    conn: Conn, downlink: Downlink, prefix: str, uid: str, update: DesiredUpdate, now: datetime
) -> Twin:
    """Merge new desired values, publish them retained, then commit (a refused publish undoes).

    Commits the connection's transaction.
    """
    with conn.transaction():
        row = _locked_twin_row(conn, uid)
        _check_desired(conn, uid, update)
        desired = dict(row["desired"])
        for name, value in update.values.items():
            if value is None:
                desired.pop(name, None)
            else:
                desired[name] = value
        version = row["desired_version"] + 1
        conn.execute(
            "UPDATE device_twins SET desired = %s, desired_version = %s WHERE device_id = %s",
            (Jsonb(desired), version, row["device_id"]),
        )
        message = DesiredState(version=version, values=desired)
        downlink.publish(
            device_topic(prefix, uid, Channel.DESIRED), json_payload(message), retain=True
        )
    conn.commit()
    log.info("devices.desired_set", device_id=row["device_id"], version=version)
    return get_twin(conn, uid, now)


def connection_history(conn: Conn, uid: str, limit: int = 100) -> list[ConnectionEvent]:
    """A device's connection changes, newest first."""
    rows = conn.execute(
        """
        SELECT e.state, e.received_at, e.device_ts, e.firmware
        FROM device_connection_events e JOIN devices d ON d.id = e.device_id
        WHERE d.uid = %s ORDER BY e.received_at DESC, e.id DESC LIMIT %s
        """,
        (uid, limit),
    ).fetchall()
    return [ConnectionEvent.model_validate(r) for r in rows]
