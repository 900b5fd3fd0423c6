"""What devices say about themselves that is not telemetry: status and command answers.

Ingest calls these inside its batch transaction, so they commit or roll back with the batch.
They never raise on stale or unknown input (a late status, an ack for an unknown command):
that is logged and skipped, because one odd message must not undo a whole batch.
"""

from __future__ import annotations

from datetime import datetime

import structlog
from psycopg import Connection
from psycopg.rows import DictRow

from devices.protocol import CommandAck, DeviceStatus

log = structlog.get_logger(__name__)

# Device answer → command status. "accepted" means it arrived; the others are final.
ACK_STATUS = {"accepted": "delivered", "done": "acked", "rejected": "failed", "failed": "failed"}
FINAL_STATUSES = ("acked", "failed", "expired")


def apply_status(
    conn: Connection[DictRow], device_id: int, status: DeviceStatus, received_at: datetime
) -> None:
    """Record a status message: twin connection state, last_seen and connection history.

    Ordered by receive time (the last will carries the time of the connect it was set at,
    so device time would lie); a status older than the current state is ignored.
    """
    row = conn.execute(
        """
        INSERT INTO device_twins (device_id) VALUES (%s)
        ON CONFLICT (device_id) DO UPDATE SET device_id = EXCLUDED.device_id
        RETURNING connection, connection_changed_at
        """,
        (device_id,),
    ).fetchone()
    assert row is not None
    changed_at = row["connection_changed_at"]
    if changed_at is not None and received_at < changed_at:
        log.debug("devices.status_stale", device_id=device_id)
        return
    if status.state == "online":
        conn.execute(
            "UPDATE device_twins SET last_seen = GREATEST(last_seen, %s) WHERE device_id = %s",
            (received_at, device_id),
        )
    if status.firmware:
        conn.execute(
            "UPDATE devices SET firmware = %s WHERE id = %s AND firmware IS DISTINCT FROM %s",
            (status.firmware, device_id, status.firmware),
        )
    if row["connection"] == status.state:
        return
    conn.execute(
        """
        UPDATE device_twins SET connection = %s, connection_changed_at = %s
        WHERE device_id = %s
        """,
        (status.state, received_at, device_id),
    )
    conn.execute(
        """
        INSERT INTO device_connection_events (device_id, state, device_ts, received_at, firmware)
        VALUES (%s, %s, %s, %s, %s)
        """,
        (device_id, status.state, status.ts, received_at, status.firmware),
    )
    log.info("devices.connection_changed", device_id=device_id, state=status.state)


def apply_command_ack(
    conn: Connection[DictRow], device_id: int, ack: CommandAck, received_at: datetime
) -> None:
    """Move a command of this device to the status its answer means; final states stay."""
    new_status = ACK_STATUS[ack.status]
    row = conn.execute(
        """
        UPDATE device_commands SET
            status = %(new)s,
            delivered_at = COALESCE(delivered_at, %(at)s),
            finished_at = CASE WHEN %(new)s IN ('acked', 'failed') THEN %(at)s END,
            detail = COALESCE(%(detail)s, detail)
        WHERE command_id = %(command_id)s AND device_id = %(device_id)s
          AND status IN ('pending', 'delivered')
        RETURNING status
        """,
        {
            "new": new_status,
            "at": received_at,
            "detail": ack.detail,
            "command_id": ack.command_id,
            "device_id": device_id,
        },
    ).fetchone()
    if row is None:
        # Unknown id, another device's command, or already final (a late or repeated ack).
        log.info("devices.command_ack_ignored", device_id=device_id, ack_status=ack.status)
        return
    log.info("devices.command_acked", device_id=device_id, status=row["status"])
