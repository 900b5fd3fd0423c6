"""The append-only audit log: record security-relevant events and let operators query them.

Other packages' routers record their own events (rule changes, provisioning, ownership) with
`record`; the API also records every state-changing request and every read of personal data
automatically (api/middleware.py). `details` must never carry personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from api.security.principal import Principal

INSERT_SQL = (
    "INSERT INTO audit_log (actor_kind, actor_id, actor_role, action, target_kind, target_id, "
    "outcome, client_ip, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _row(
    action: str,
    principal: Principal | None,
    target_kind: str | None,
    target_id: str | None,
    outcome: str,
    client_ip: str | None,
    details: dict[str, Any] | None,
    actor: tuple[str, str | None, str | None] | None,
) -> tuple[Any, ...]:
    if principal is not None:
        actor = (principal.kind, principal.public_id, principal.role)
    kind, actor_id, role = actor or ("anonymous", None, None)
    return (
        kind,
        actor_id,
        role,
        action,
        target_kind,
        target_id,
        outcome,
        client_ip,
        Jsonb(details or {}),
    )


async def record(
    conn: AsyncConnection[DictRow],
    action: str,
    *,
    principal: Principal | None = None,
    actor: tuple[str, str | None, str | None] | None = None,
    target_kind: str | None = None,
    target_id: str | None = None,
    outcome: str = "success",
    client_ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event (inside the caller's transaction, so it commits with the change)."""
    await conn.execute(
        INSERT_SQL,
        _row(action, principal, target_kind, target_id, outcome, client_ip, details, actor),
    )


def record_sync(
    conn: Connection[DictRow],
    action: str,
    *,
    principal: Principal | None = None,
    actor: tuple[str, str | None, str | None] | None = None,
    target_kind: str | None = None,
    target_id: str | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> None:
    """`record` for synchronous callers (services, CLI, workers); actor kind 'system' by default."""
    conn.execute(
        INSERT_SQL,
        _row(
            action,
            principal,
            target_kind,
            target_id,
            outcome,
            None,
            details,
            actor or ("system", None, None),
        ),
    )


async def query(
    conn: AsyncConnection[DictRow],
    *,
    since: datetime,
    until: datetime,
    action_prefix: str | None,
    actor_id: str | None,
    target_id: str | None,
    descending: bool,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A page of events in a time range, filtered, ordered by time then id."""
    op, order = ("<", "DESC") if descending else (">", "ASC")
    where = ["at >= %(since)s", "at < %(until)s"]
    if action_prefix:
        where.append("action LIKE %(action_like)s")
    if actor_id:
        where.append("actor_id = %(actor_id)s")
    if target_id:
        where.append("target_id = %(target_id)s")
    if after is not None:
        where.append(f"(at, id) {op} (%(after_at)s, %(after_id)s)")
    cur = await conn.execute(
        f"SELECT id, at, actor_kind, actor_id, actor_role, action, target_kind, target_id, "
        f"outcome, client_ip, details FROM audit_log WHERE {' AND '.join(where)} "
        f"ORDER BY at {order}, id {order} LIMIT %(limit)s",
        {
            "since": since,
            "until": until,
            "action_like": (action_prefix or "").replace("%", r"\%").replace("_", r"\_") + "%",
            "actor_id": actor_id,
            "target_id": target_id,
            "after_at": after[0] if after else None,
            "after_id": after[1] if after else None,
            "limit": limit,
        },
    )
    return await cur.fetchall()
