"""Read-only message, feed and preference queries for dashboards (no writes, no side effects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time

from psycopg import Connection
from psycopg.rows import DictRow

Conn = Connection[DictRow]
MAX_ROWS = 500


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message sent (or held back) on one channel to one person."""

    id: int
    device_uid: str | None
    kind: str
    severity: str
    channel: str
    language: str
    title: str
    body: str
    status: str
    reason: str | None
    created_at: datetime
    sent_at: datetime | None


def _messages(conn: Conn, where: str, params: dict[str, object], limit: int) -> list[MessageRow]:
    rows = conn.execute(
        f"""SELECT n.id, d.uid AS device_uid, n.kind, n.severity, n.channel, n.language,
                   n.title, n.body, n.status, n.reason, n.created_at, n.sent_at
            FROM notifications n LEFT JOIN devices d ON d.id = n.device_id
            WHERE {where} ORDER BY n.created_at DESC, n.id DESC LIMIT %(limit)s""",
        {**params, "limit": min(limit, MAX_ROWS)},
    ).fetchall()
    return [MessageRow(**r) for r in rows]


def device_messages(conn: Conn, device_id: int, *, limit: int = 50) -> list[MessageRow]:
    """What a device said to its people, newest first (operator notices are not among them)."""
    return _messages(
        conn,
        "n.device_id = %(device_id)s AND n.customer_id IS NOT NULL",
        {"device_id": device_id},
        limit,
    )


def customer_messages(conn: Conn, customer_id: int, *, limit: int = 50) -> list[MessageRow]:
    """Every message to one customer on any channel, newest first."""
    return _messages(conn, "n.customer_id = %(customer_id)s", {"customer_id": customer_id}, limit)


@dataclass(frozen=True, slots=True)
class FeedPost:
    """A post in a customer's friend feed."""

    id: int
    device_uid: str | None
    kind: str
    severity: str
    title: str
    body: str
    created_at: datetime
    read_at: datetime | None


def customer_feed(conn: Conn, customer_id: int, *, limit: int = 30) -> list[FeedPost]:
    """A customer's friend feed, newest first."""
    rows = conn.execute(
        """SELECT p.id, d.uid AS device_uid, p.kind, p.severity, p.title, p.body,
                  p.created_at, p.read_at
           FROM feed_posts p LEFT JOIN devices d ON d.id = p.device_id
           WHERE p.customer_id = %s ORDER BY p.id DESC LIMIT %s""",
        (customer_id, min(limit, MAX_ROWS)),
    ).fetchall()
    return [FeedPost(**r) for r in rows]


@dataclass(frozen=True, slots=True)
class PreferenceRow:
    """One preference scope: everything, one device and/or one kind of moment."""

    device_uid: str | None
    moment_kind: str | None
    channels: list[str] | None
    delivery: str | None


@dataclass(frozen=True, slots=True)
class Preferences:
    """A customer's notification profile and scoped preferences."""

    quiet_start: time | None
    quiet_end: time | None
    daily_cap: int | None
    digest_hour: int | None
    scopes: list[PreferenceRow]


def customer_preferences(conn: Conn, customer_id: int) -> Preferences:
    """A customer's quiet hours, caps and per-scope channel choices."""
    profile = conn.execute(
        """SELECT quiet_start, quiet_end, daily_cap, digest_hour FROM notify_profiles
           WHERE customer_id = %s""",
        (customer_id,),
    ).fetchone() or {"quiet_start": None, "quiet_end": None, "daily_cap": None, "digest_hour": None}
    scopes = conn.execute(
        """SELECT d.uid AS device_uid, p.moment_kind, p.channels, p.delivery
           FROM notify_preferences p LEFT JOIN devices d ON d.id = p.device_id
           WHERE p.customer_id = %s ORDER BY d.uid NULLS FIRST, p.moment_kind NULLS FIRST""",
        (customer_id,),
    ).fetchall()
    return Preferences(**profile, scopes=[PreferenceRow(**r) for r in scopes])


def failed_deliveries(conn: Conn, customer_id: int, *, days: int = 7) -> int:
    """How many messages to a customer failed for good in the last `days` days."""
    row = conn.execute(
        """SELECT count(*) AS n FROM notifications WHERE customer_id = %s AND status = 'failed'
             AND created_at > now() - make_interval(days => %s)""",
        (customer_id, days),
    ).fetchone()
    return int(row["n"]) if row else 0
