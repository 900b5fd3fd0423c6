"""The SQL of notify: inbox, outbox, preferences, profiles, feed posts, reactions, digests."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import Connection
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from devices.service import customer_context

Conn = Connection[DictRow]
Row = dict[str, Any]

# FieldCipher contexts of the customer columns notify reads: the ones the registry seals
# them with (tests/notify/test_customer_contract.py holds both sides together).
NAME_CONTEXT = customer_context("name")
EMAIL_CONTEXT = customer_context("email")
USER_EMAIL_CONTEXT = "users.email_enc"  # api/ accounts: a customer's login address
CHAT_URLS_CONTEXT = "notify_profiles.chat_urls_enc"
WEBHOOK_SECRET_CONTEXT = "notify_profiles.webhook_secret_enc"  # noqa: S105 (a cipher context)

# The customer record's address first; else the address the customer signs in with.
_USER_EMAIL_SQL = """(SELECT u.email_enc FROM users u WHERE u.customer_id = c.id
                     AND u.email_enc IS NOT NULL ORDER BY u.id LIMIT 1)"""
_EMAIL_SQL = f"coalesce(c.email_enc, {_USER_EMAIL_SQL})"

# ---------------------------------------------------------------- fan-out


_CLAIM_MOMENTS = """
    WITH claimed AS (
        DELETE FROM notify_inbox WHERE moment_id IN (
            SELECT moment_id FROM notify_inbox ORDER BY moment_id
            LIMIT %s FOR UPDATE SKIP LOCKED)
        RETURNING moment_id)
    SELECT m.id, m.device_id, m.kind, m.severity, m.occurred_at, m.facts, m.alert_id,
           d.uid AS device_uid, d.nickname, d.model_id
    FROM claimed JOIN moments m ON m.id = claimed.moment_id
    JOIN devices d ON d.id = m.device_id
    ORDER BY m.id"""

_CLAIM_OPERATOR_NOTICES = """
    WITH claimed AS (
        DELETE FROM notify_operator_inbox WHERE notice_id IN (
            SELECT notice_id FROM notify_operator_inbox ORDER BY notice_id
            LIMIT %s FOR UPDATE SKIP LOCKED)
        RETURNING notice_id)
    SELECT n.id, n.device_id, n.severity, n.message, n.occurred_at,
           d.uid AS device_uid, d.model_id, r.key AS rule_key
    FROM claimed JOIN operator_notifications n ON n.id = claimed.notice_id
    JOIN devices d ON d.id = n.device_id
    LEFT JOIN rules r ON r.id = n.rule_id
    ORDER BY n.id"""


@contextlib.contextmanager
def pipelined_transaction(conn: Conn) -> Iterator[None]:
    """BEGIN ... COMMIT in one pipeline: one round trip per result the block fetches, and the
    COMMIT travels with the block's last writes.

    psycopg's transaction() nests pipelines and syncs at each level (several round trips per
    transaction). The connection must be in autocommit mode and outside a transaction.
    """
    if not conn.autocommit or conn.info.transaction_status != TransactionStatus.IDLE:
        raise psycopg.ProgrammingError("pipelined_transaction needs an idle autocommit connection")
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            yield
            conn.execute("COMMIT")
    except BaseException:
        if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
        raise


def claim_inboxes(conn: Conn, limit: int) -> tuple[list[Row], list[Row]]:
    """New moments and new operator notices, up to `limit` each (one round trip in a
    pipeline)."""
    moments = conn.execute(_CLAIM_MOMENTS, (limit,))
    notices = conn.execute(_CLAIM_OPERATOR_NOTICES, (limit,))
    return moments.fetchall(), notices.fetchall()


# A person as fan-out needs them: language, zone, sealed name, profile, preferences.
_PERSON_COLUMNS = f"""c.id AS customer_id, c.language, c.time_zone, c.name_enc,
       {_EMAIL_SQL} IS NOT NULL AS has_email,
       to_jsonb(p) AS profile,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'device_id', n.device_id, 'moment_kind', n.moment_kind,
                   'channels', n.channels, 'delivery', n.delivery)), '[]')
        FROM notify_preferences n WHERE n.customer_id = c.id) AS preferences"""


def person(conn: Conn, customer_id: int) -> Row | None:
    """One person with their profile, preferences and email presence."""
    return conn.execute(
        f"""SELECT {_PERSON_COLUMNS} FROM customers c
            LEFT JOIN notify_profiles p ON p.customer_id = c.id
            WHERE c.id = %s AND c.erased_at IS NULL""",
        (customer_id,),
    ).fetchone()


_RECIPIENTS_SQL = f"""SELECT o.device_id, {_PERSON_COLUMNS}
    FROM device_ownerships o JOIN customers c ON c.id = o.customer_id
    LEFT JOIN notify_profiles p ON p.customer_id = c.id
    WHERE o.device_id = ANY(%s) AND o.ended_at IS NULL AND c.erased_at IS NULL
    ORDER BY o.device_id, c.id"""


def recipients(conn: Conn, device_ids: Sequence[int]) -> dict[int, list[Row]]:
    """The people sharing each device now, with their profile, preferences and email presence."""
    return _by_device(conn.execute(_RECIPIENTS_SQL, (list(device_ids),)).fetchall())


def _by_device(rows: Sequence[Row]) -> dict[int, list[Row]]:
    by_device: dict[int, list[Row]] = defaultdict(list)
    for row in rows:
        by_device[row["device_id"]].append(row)
    return by_device


@dataclass
class FanOutContext:
    """What fan-out needs to know about one batch of moments, read in one round trip.

    `recent` holds (person, device, kind) heard about since the cooldown began;
    `interrupting` maps each person to {moment id: newest interrupting row} over a window
    that surely covers their local midnight (the caller applies the midnight, so the rule
    for "today" lives in one place: policy.local_midnight).
    """

    people: dict[int, list[Row]]
    recent: set[tuple[int, int, str]]
    interrupting: dict[int, dict[int, datetime]]


def fan_out_context(
    conn: Conn,
    device_kinds: Sequence[tuple[int, str]],
    cooldown_since: datetime | None,
    interruptions_since: datetime,
) -> FanOutContext:
    """Recipients, cooldown and daily-cap facts of a batch: three queries (one round trip in
    a pipeline)."""
    device_ids = sorted({device for device, _ in device_kinds})
    pairs = sorted(set(device_kinds))
    people = conn.execute(_RECIPIENTS_SQL, (device_ids,))
    recent = (
        conn.execute(
            """SELECT o.customer_id, m.device_id, m.kind
               FROM unnest(%(devices)s::bigint[], %(kinds)s::text[]) AS m(device_id, kind)
               JOIN device_ownerships o ON o.device_id = m.device_id AND o.ended_at IS NULL
               WHERE EXISTS (
                   SELECT 1 FROM notifications n
                   WHERE n.customer_id = o.customer_id AND n.device_id = m.device_id
                     AND n.kind = m.kind AND n.purpose = 'moment'
                     AND n.created_at >= %(since)s
                     AND (n.status IN ('sent', 'pending') OR n.reason = 'digest'))""",
            {
                "devices": [d for d, _ in pairs],
                "kinds": [k for _, k in pairs],
                "since": cooldown_since,
            },
        )
        if cooldown_since is not None
        else None
    )
    interrupting = conn.execute(
        """SELECT n.customer_id, n.moment_id, max(n.created_at) AS at
           FROM notifications n
           WHERE n.customer_id IN (SELECT customer_id FROM device_ownerships
                                   WHERE device_id = ANY(%(devices)s) AND ended_at IS NULL)
             AND n.created_at >= %(since)s AND n.purpose = 'moment'
             AND n.channel <> 'feed' AND n.status IN ('sent', 'pending')
           GROUP BY n.customer_id, n.moment_id""",
        {"devices": device_ids, "since": interruptions_since},
    )
    context = FanOutContext(_by_device(people.fetchall()), set(), defaultdict(dict))
    if recent is not None:
        context.recent = {(r["customer_id"], r["device_id"], r["kind"]) for r in recent}
    for row in interrupting:
        context.interrupting[row["customer_id"]][row["moment_id"]] = row["at"]
    return context


_INSERT_FEED_POST = """
    INSERT INTO feed_posts (customer_id, device_id, moment_id, kind, severity, language, title,
                            body, created_at)
    VALUES (%(customer_id)s, %(device_id)s, %(moment_id)s, %(kind)s, %(severity)s, %(language)s,
            %(title)s, %(body)s, coalesce(%(created_at)s, now()))
    ON CONFLICT (customer_id, moment_id) DO NOTHING"""


def insert_feed_post(conn: Conn, post: Row) -> int | None:
    """Add a post to a person's feed; None when this moment was already posted to them."""
    row = conn.execute(_INSERT_FEED_POST + " RETURNING id", post).fetchone()
    return int(row["id"]) if row else None


def record_fan_out(
    conn: Conn,
    posts: Sequence[Row],
    rows: Sequence[Row],
    digest_items: Sequence[Row] = (),
    operator_rows: Sequence[Row] = (),
) -> None:
    """Write a batch's feed posts, outbox rows and digest items (queued in a pipeline: they
    travel with the COMMIT).

    Posts go first: an outbox row for the feed links to its post by (person, moment).
    """
    with conn.cursor() as cur:
        if posts:
            cur.executemany(_INSERT_FEED_POST, posts)
        if rows:
            cur.executemany(_INSERT_NOTIFICATIONS, rows)
        if digest_items:
            cur.executemany(_INSERT_DIGEST_ITEM, digest_items)
        if operator_rows:
            cur.executemany(_INSERT_OPERATOR_NOTIFICATIONS, operator_rows)


_INSERT_OPERATOR_NOTIFICATIONS = """
    INSERT INTO notifications (operator_notice_id, recipient, device_id, kind, severity,
        channel, purpose, language, title, body, status, reason)
    VALUES (%(operator_notice_id)s, %(recipient)s, %(device_id)s, %(kind)s, %(severity)s,
        %(channel)s, 'operator', %(language)s, %(title)s, %(body)s, %(status)s, %(reason)s)
    ON CONFLICT (operator_notice_id, channel, recipient)
        WHERE operator_notice_id IS NOT NULL DO NOTHING"""


_INSERT_NOTIFICATIONS = """
    INSERT INTO notifications (moment_id, customer_id, device_id, kind, severity,
        channel, purpose, language, title, body, status, reason, next_attempt_at,
        feed_post_id, sent_at)
    VALUES (%(moment_id)s, %(customer_id)s, %(device_id)s, %(kind)s, %(severity)s,
        %(channel)s, %(purpose)s, %(language)s, %(title)s, %(body)s, %(status)s,
        %(reason)s, %(next_attempt_at)s,
        CASE WHEN %(channel)s = 'feed' AND %(status)s = 'sent' THEN
            (SELECT id FROM feed_posts
             WHERE customer_id = %(customer_id)s AND moment_id = %(moment_id)s)
        END,
        CASE WHEN %(status)s = 'sent' THEN now() END)
    ON CONFLICT (moment_id, customer_id, channel, purpose)
        WHERE moment_id IS NOT NULL DO NOTHING"""


def insert_notifications(conn: Conn, rows: Sequence[Row]) -> None:
    """Add outbox rows; a row that already exists for its moment, person and channel is kept."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(_INSERT_NOTIFICATIONS, rows)


_INSERT_DIGEST_ITEM = """
    INSERT INTO notify_digest_items (customer_id, device_id, moment_id, kind, title)
    VALUES (%(customer_id)s, %(device_id)s, %(moment_id)s, %(kind)s, %(title)s)
    ON CONFLICT (customer_id, moment_id) DO NOTHING"""


# ---------------------------------------------------------------- delivery


def claim_due(conn: Conn, limit: int, lease_s: float) -> list[Row]:
    """Lease due pending notifications to this worker and count the attempt."""
    return conn.execute(
        """WITH due AS (
               SELECT id FROM notifications
               WHERE status = 'pending' AND next_attempt_at <= now()
                 AND (lease_until IS NULL OR lease_until < now())
               ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)
           UPDATE notifications n
              SET lease_until = now() + make_interval(secs => %s),
                  attempts = n.attempts + 1, updated_at = now()
           FROM due WHERE n.id = due.id
           RETURNING n.id, n.moment_id, n.customer_id, n.device_id, n.kind, n.severity,
                     n.channel, n.purpose, n.language, n.title, n.body, n.attempts,
                     n.idempotency_key::text AS idempotency_key, n.created_at,
                     n.operator_notice_id, n.recipient""",
        (limit, lease_s),
    ).fetchall()


def addresses(conn: Conn, customer_ids: Sequence[int]) -> dict[int, Row]:
    """Public id, sealed email, webhook URL and secret, and sealed chat URLs of these people."""
    rows = conn.execute(
        f"""SELECT c.id, c.public_id::text AS public_id, c.email_enc, p.webhook_url,
                  p.webhook_secret_enc, p.chat_urls_enc, {_USER_EMAIL_SQL} AS user_email_enc
           FROM customers c LEFT JOIN notify_profiles p ON p.customer_id = c.id
           WHERE c.id = ANY(%s)""",
        (list(customer_ids),),
    ).fetchall()
    return {row["id"]: row for row in rows}


def device_uids(conn: Conn, device_ids: Sequence[int]) -> dict[int, str]:
    """Device uid by id."""
    rows = conn.execute("SELECT id, uid FROM devices WHERE id = ANY(%s)", (list(device_ids),))
    return {row["id"]: row["uid"] for row in rows}


def mark_sent(conn: Conn, notification_id: int) -> None:
    """Record a delivery."""
    conn.execute(
        """UPDATE notifications SET status = 'sent', sent_at = now(), lease_until = NULL,
                  last_error = NULL, updated_at = now()
           WHERE id = %s AND status = 'pending'""",
        (notification_id,),
    )


def mark_retry(conn: Conn, notification_id: int, delay_s: float, error: str) -> None:
    """Put a notification back for a later attempt."""
    conn.execute(
        """UPDATE notifications
              SET next_attempt_at = now() + make_interval(secs => %s), lease_until = NULL,
                  last_error = %s, updated_at = now()
           WHERE id = %s AND status = 'pending'""",
        (delay_s, error[:500], notification_id),
    )


def mark_final(conn: Conn, notification_id: int, status: str, reason: str) -> None:
    """Record that a notification failed or was suppressed, and why."""
    conn.execute(
        """UPDATE notifications SET status = %s, reason = %s, lease_until = NULL,
                  updated_at = now()
           WHERE id = %s AND status = 'pending'""",
        (status, reason[:500], notification_id),
    )


def acknowledged(conn: Conn, customer_id: int, moment_id: int | None) -> bool:
    """Whether a person saw the moment: feed post read or answered, or its alert acknowledged."""
    if moment_id is None:
        return False
    row = conn.execute(
        """SELECT 1 FROM feed_posts p
           WHERE p.customer_id = %s AND p.moment_id = %s
             AND (p.read_at IS NOT NULL
                  OR EXISTS (SELECT 1 FROM feed_reactions r WHERE r.post_id = p.id))""",
        (customer_id, moment_id),
    ).fetchone()
    return row is not None or _alert_acknowledged(conn, moment_id)


def _alert_acknowledged(conn: Conn, moment_id: int) -> bool:
    # The alerts table belongs to rules/; read it only when it has an acknowledgement column.
    column = conn.execute(
        """SELECT column_name FROM information_schema.columns
           WHERE table_name = 'alerts' AND table_schema = current_schema()
             AND column_name IN ('acknowledged_at', 'cleared_at')"""
    ).fetchall()
    names = {row["column_name"] for row in column}
    if not names:
        return False
    checks = " OR ".join(f"a.{name} IS NOT NULL" for name in sorted(names))
    row = conn.execute(
        f"""SELECT 1 FROM moments m JOIN alerts a ON a.id = m.alert_id
            WHERE m.id = %s AND ({checks})""",
        (moment_id,),
    ).fetchone()
    return row is not None


# ---------------------------------------------------------------- digests


def customers_with_open_digests(conn: Conn) -> list[Row]:
    """People with held minor moments, their zone, language and digest settings."""
    return conn.execute(
        """SELECT c.id AS customer_id, c.language, c.time_zone,
                  coalesce(p.digest_hour, 19) AS digest_hour, p.last_digest_on
           FROM customers c LEFT JOIN notify_profiles p ON p.customer_id = c.id
           WHERE c.erased_at IS NULL AND EXISTS (
               SELECT 1 FROM notify_digest_items i
               WHERE i.customer_id = c.id AND i.digest_post_id IS NULL)"""
    ).fetchall()


def lock_open_digest_items(conn: Conn, customer_id: int) -> list[Row]:
    """The held items of one person, locked so one worker builds the digest."""
    return conn.execute(
        """SELECT id, title FROM notify_digest_items
           WHERE customer_id = %s AND digest_post_id IS NULL
           ORDER BY id FOR UPDATE SKIP LOCKED""",
        (customer_id,),
    ).fetchall()


def close_digest(conn: Conn, customer_id: int, item_ids: Sequence[int], post_id: int) -> None:
    """Link items to the digest post and remember the day it was sent."""
    conn.execute(
        "UPDATE notify_digest_items SET digest_post_id = %s WHERE id = ANY(%s)",
        (post_id, list(item_ids)),
    )
    conn.execute(
        """INSERT INTO notify_profiles (customer_id, last_digest_on)
           VALUES (%s, (now() AT TIME ZONE (SELECT time_zone FROM customers WHERE id = %s))::date)
           ON CONFLICT (customer_id) DO UPDATE SET last_digest_on = EXCLUDED.last_digest_on""",
        (customer_id, customer_id),
    )


# ---------------------------------------------------------------- weekly updates

WEEKLY_LOCK_KEY = 0x6B7A_7765_656B  # one worker posts weekly updates at a time


def try_weekly_lock(conn: Conn) -> bool:
    """Take the weekly-update lock for this transaction, if nobody holds it."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (WEEKLY_LOCK_KEY,))
    found = row.fetchone()
    return bool(found and found["ok"])


def weekly_candidates(conn: Conn, now: datetime, min_gap: Any) -> list[Row]:
    """(person, device) pairs whose local Sunday digest hour has come and not yet posted."""
    return conn.execute(
        """SELECT c.id AS customer_id, c.language, c.time_zone, c.name_enc,
                  d.id AS device_id, d.model_id, d.nickname
           FROM device_ownerships o
           JOIN customers c ON c.id = o.customer_id AND c.erased_at IS NULL
           JOIN devices d ON d.id = o.device_id AND d.decommissioned_at IS NULL
           LEFT JOIN notify_profiles p ON p.customer_id = c.id
           WHERE o.ended_at IS NULL
             AND extract(dow FROM %(now)s AT TIME ZONE c.time_zone) = 0
             AND extract(hour FROM %(now)s AT TIME ZONE c.time_zone)
                 >= coalesce(p.digest_hour, 19)
             AND NOT EXISTS (
                 SELECT 1 FROM notify_preferences n
                 WHERE n.customer_id = c.id AND n.delivery = 'off'
                   AND coalesce(n.device_id, d.id) = d.id
                   AND coalesce(n.moment_kind, 'friend.weekly') = 'friend.weekly')
             AND NOT EXISTS (
                 SELECT 1 FROM feed_posts f
                 WHERE f.customer_id = c.id AND f.device_id = d.id AND f.kind = 'friend.weekly'
                   AND f.created_at > %(now)s - %(gap)s)
           ORDER BY c.id, d.id""",
        {"now": now, "gap": min_gap},
    ).fetchall()


def count_events(conn: Conn, device_id: int, event: str, start: datetime, end: datetime) -> int:
    """How many times a device reported an event in [start, end)."""
    row = conn.execute(
        """SELECT count(*) AS n FROM device_events
           WHERE device_id = %s AND event = %s AND ts >= %s AND ts < %s""",
        (device_id, event, start, end),
    ).fetchone()
    return int(row["n"]) if row else 0


# ---------------------------------------------------------------- erasure

# Everything notify keeps about one person (messages carry their name), in FK-safe order.
# Each statement takes the customer id as its only parameter; api/ privacy erasure runs them.
ERASE_CUSTOMER_STATEMENTS = (
    "DELETE FROM notify_digest_items WHERE customer_id = %s",
    "DELETE FROM notifications WHERE customer_id = %s",
    "DELETE FROM feed_reactions WHERE post_id IN "
    "(SELECT id FROM feed_posts WHERE customer_id = %s)",
    "DELETE FROM feed_posts WHERE customer_id = %s",
    "DELETE FROM notify_preferences WHERE customer_id = %s",
    "DELETE FROM notify_profiles WHERE customer_id = %s",
)


def erase_customer(conn: Conn, customer_id: int) -> None:
    """Delete every message, post, preference and profile of one person."""
    with conn.transaction():
        for statement in ERASE_CUSTOMER_STATEMENTS:
            conn.execute(statement, (customer_id,))
