"""Sends the commands rules asked for (rule_command_intents) through devices/, at most once.

The ingest transaction only records an intent: `devices.commands.send_command` commits and
publishes by itself, so it runs here, in the scheduler, one intent per transaction.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from devices.commands import send_command
from devices.downlink import Downlink
from devices.errors import DevicesError
from devices.models import CommandCreate
from rules import repo

log = structlog.get_logger(__name__)


def dispatch_intents(
    conn: repo.Conn, downlink: Downlink, prefix: str, now: datetime, limit: int = 100
) -> int:
    """Send pending intents (SKIP LOCKED, so several schedulers may run); how many were handled.

    The connection must not be in autocommit mode: marking an intent dispatched commits
    together with the device command row.
    """
    handled = 0
    while handled < limit:
        intent = conn.execute(
            "SELECT i.id, i.name, i.args, d.uid, r.key FROM rule_command_intents i"
            " JOIN devices d ON d.id = i.device_id JOIN rules r ON r.id = i.rule_id"
            " WHERE i.dispatched_at IS NULL ORDER BY i.id LIMIT 1 FOR UPDATE OF i SKIP LOCKED"
        ).fetchone()
        if intent is None:
            conn.commit()
            return handled
        conn.execute(
            "UPDATE rule_command_intents SET dispatched_at = %s WHERE id = %s", (now, intent["id"])
        )
        _send(conn, downlink, prefix, now, intent)
        handled += 1
    return handled


def _send(
    conn: repo.Conn, downlink: Downlink, prefix: str, now: datetime, intent: dict[str, object]
) -> None:
    try:
        command = CommandCreate.model_validate({"name": intent["name"], "args": intent["args"]})
        sent = send_command(
            conn, downlink, prefix, str(intent["uid"]), command, now, f"rule:{intent['key']}"
        )
    except (DevicesError, ValueError) as exc:  # refused for good: say why, never retry
        conn.rollback()
        conn.execute(
            "UPDATE rule_command_intents SET dispatched_at = %s, detail = %s WHERE id = %s",
            (now, f"not sent: {exc}"[:256], intent["id"]),
        )
        conn.commit()
        log.warning("rules.command_refused", intent_id=intent["id"], error_type=type(exc).__name__)
        return
    conn.execute(
        "UPDATE rule_command_intents SET command_id = %s WHERE id = %s",
        (sent.command_id, intent["id"]),
    )
    conn.commit()
    log.info("rules.command_sent", intent_id=intent["id"], status=sent.status)
