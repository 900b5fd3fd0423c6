"""Commands: API → MQTT downlink (QoS 1) → device answer via ingest → status, with expiry.

The command row is committed before it is published, so a device that answers at once
finds it. A publish the broker refuses marks the command failed; an unanswered one is
expired by `expire_commands`, which the scheduler calls.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import structlog
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from devices.catalog import ProductModel
from devices.catalog_sync import product_model
from devices.downlink import Downlink
from devices.errors import BrokerError, InvalidRequest, NotFound
from devices.models import CommandCreate, CommandPublic
from devices.protocol import Channel, CommandRequest, device_topic, json_payload

log = structlog.get_logger(__name__)

Conn = Connection[DictRow]
COMMAND_COLUMNS = """c.command_id, c.name, c.args, c.status, c.created_at, c.expires_at,
    c.published_at, c.delivered_at, c.finished_at, c.detail"""


def check_command(model: ProductModel, command: CommandCreate) -> None:
    """InvalidRequest unless the product accepts this command with exactly these arguments."""
    spec = model.commands.get(command.name)
    if spec is None:
        raise InvalidRequest(f"{model.id} has no command {command.name!r}")
    problems = [f"{name}: unknown argument" for name in command.args if name not in spec.args]
    for name, arg_spec in spec.args.items():
        if name not in command.args:
            problems.append(f"{name}: missing")
        elif reason := arg_spec.problem(command.args[name]):
            problems.append(f"{name}: {reason}")
    if problems:
        raise InvalidRequest("; ".join(problems))


def send_command(
    conn: Conn,
    downlink: Downlink,
    prefix: str,
    uid: str,
    command: CommandCreate,
    now: datetime,
    requested_by: str | None = None,
) -> CommandPublic:
    """Validate, store (committed), publish with QoS 1; the status says how far it got.

    Commits the connection's transaction.
    """
    device = conn.execute("SELECT id, model_id FROM devices WHERE uid = %s", (uid,)).fetchone()
    if device is None:
        raise NotFound("no such device")
    check_command(product_model(conn, device["model_id"]), command)
    request = CommandRequest(
        command_id=secrets.token_urlsafe(12),
        name=command.name,
        args=command.args,
        expires_at=now + timedelta(seconds=command.ttl_s),
    )
    conn.execute(
        """
        INSERT INTO device_commands (command_id, device_id, name, args, expires_at, requested_by,
                                     created_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        """,
        (
            request.command_id,
            device["id"],
            request.name,
            Jsonb(request.args),
            request.expires_at,
            requested_by,
            now,
        ),
    )
    conn.commit()
    _publish(conn, downlink, prefix, uid, request)
    return get_command(conn, uid, request.command_id)


def _publish(conn: Conn, downlink: Downlink, prefix: str, uid: str, req: CommandRequest) -> None:
    topic = device_topic(prefix, uid, Channel.COMMANDS, req.command_id)
    try:
        downlink.publish(topic, json_payload(req))
    except BrokerError as exc:
        conn.execute(
            """
            UPDATE device_commands SET status = 'failed', finished_at = now(), detail = %s
            WHERE command_id = %s AND status = 'pending'
            """,
            (f"broker did not accept the command: {exc}"[:256], req.command_id),
        )
        conn.commit()
        log.warning("devices.command_not_published", reason=str(exc))
        return
    conn.execute(
        "UPDATE device_commands SET published_at = now() WHERE command_id = %s",
        (req.command_id,),
    )
    conn.commit()
    log.info("devices.command_published", name=req.name)


def get_command(conn: Conn, uid: str, command_id: str) -> CommandPublic:
    """One command of one device."""
    row = conn.execute(
        f"""
        SELECT {COMMAND_COLUMNS} FROM device_commands c JOIN devices d ON d.id = c.device_id
        WHERE d.uid = %s AND c.command_id = %s
        """,
        (uid, command_id),
    ).fetchone()
    if row is None:
        raise NotFound("no such command")
    return CommandPublic.model_validate(row)


def list_commands(conn: Conn, uid: str, limit: int = 50) -> list[CommandPublic]:
    """A device's commands, newest first."""
    rows = conn.execute(
        f"""
        SELECT {COMMAND_COLUMNS} FROM device_commands c JOIN devices d ON d.id = c.device_id
        WHERE d.uid = %s ORDER BY c.created_at DESC, c.id DESC LIMIT %s
        """,
        (uid, limit),
    ).fetchall()
    return [CommandPublic.model_validate(r) for r in rows]


def expire_commands(conn: Conn, now: datetime, batch: int = 10_000) -> int:
    """Mark unanswered commands past their expiry as expired; return how many."""
    cursor = conn.execute(
        """
        UPDATE device_commands SET status = 'expired', finished_at = %(now)s,
               detail = COALESCE(detail, 'no answer before expiry')
        WHERE id IN (
            SELECT id FROM device_commands
            WHERE status IN ('pending', 'delivered') AND expires_at <= %(now)s
            ORDER BY expires_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED
        )
        """,
        {"now": now, "batch": batch},
    )
    if cursor.rowcount:
        log.info("devices.commands_expired", count=cursor.rowcount)
    return cursor.rowcount
