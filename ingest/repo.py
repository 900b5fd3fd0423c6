"""Ingest's SQL: device lookup, twins, dead letters, quarantine and sequence gaps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

Conn = Connection[DictRow]


def devices_by_uid(conn: Conn, uids: Sequence[str]) -> list[dict[str, Any]]:
    """Registered devices among `uids`, with their product model spec."""
    return conn.execute(
        """
        SELECT d.id, d.uid, d.model_id, d.decommissioned_at IS NOT NULL AS decommissioned,
               m.spec
        FROM devices d JOIN product_models m ON m.id = d.model_id
        WHERE d.uid = ANY(%s)
        """,
        (list(uids),),
    ).fetchall()


def lock_twins(conn: Conn, device_ids: Sequence[int]) -> dict[int, int | None]:
    """Create missing twins, lock every twin of the batch in id order (no deadlocks) and
    return each device's last seq."""
    ids = sorted(set(device_ids))
    conn.execute(
        "INSERT INTO device_twins (device_id) SELECT unnest(%s::bigint[]) "
        "ON CONFLICT (device_id) DO NOTHING",
        (ids,),
    )
    rows = conn.execute(
        "SELECT device_id, last_seq FROM device_twins "
        "WHERE device_id = ANY(%s) ORDER BY device_id FOR UPDATE",
        (ids,),
    ).fetchall()
    return {row["device_id"]: row["last_seq"] for row in rows}


def update_twins(conn: Conn, updates: Sequence[dict[str, Any]]) -> None:
    """Merge newest values into locked twins: a metric is replaced only by a newer device time.

    Each update: device_id, reported ({metric: {"v", "t"}}), oldest (the earliest "t" in
    reported), reported_at, last_seen, last_seq (times as ISO text). One JSON document
    carries the whole batch. When every incoming value is at least as new as everything the
    twin holds (`oldest >= reported_at`, the usual in-order case), the merge is a plain
    `||`; only late readings pay for the per-metric time comparison.
    """
    if not updates:
        return
    conn.execute(
        """
        UPDATE device_twins AS t SET
            reported = CASE
                WHEN t.reported_at IS NULL OR u.oldest >= t.reported_at
                THEN t.reported || u.reported
                ELSE t.reported || COALESCE((
                    SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(u.reported) AS e
                    WHERE jsonb_typeof(t.reported -> e.key) IS DISTINCT FROM 'object'
                       OR (t.reported -> e.key ->> 't') IS NULL
                       OR (t.reported -> e.key ->> 't')::timestamptz
                          <= (e.value ->> 't')::timestamptz
                ), '{}'::jsonb)
            END,
            reported_at = GREATEST(t.reported_at, u.reported_at),
            last_seen = GREATEST(t.last_seen, u.last_seen),
            last_seq = GREATEST(t.last_seq, u.last_seq)
        FROM jsonb_to_recordset(%s) AS u(device_id bigint, reported jsonb, oldest timestamptz,
             reported_at timestamptz, last_seen timestamptz, last_seq bigint)
        WHERE t.device_id = u.device_id
        """,
        (Jsonb(list(updates), dumps=orjson.dumps),),
    )


def insert_dead_letters(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows of (received_at, topic, device_uid, reason, detail, payload, payload_size)."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_dead_letters "
            "(received_at, topic, device_uid, reason, detail, payload, payload_size) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def insert_quarantine(conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows of (device_id, seq, device_ts, received_at, reason, reading); replays skipped."""
    if not rows:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ingest_quarantine (device_id, seq, device_ts, received_at, reason, "
            "reading) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(*row[:5], Jsonb(row[5])) for row in rows],
        )


def insert_gaps(conn: Conn, rows: Sequence[tuple[int, int, int, datetime]]) -> None:
    """Rows of (device_id, first_seq, last_seq, detected_at), in one statement."""
    if not rows:
        return
    device_ids, firsts, lasts, detected = zip(*rows, strict=True)
    conn.execute(
        "INSERT INTO ingest_seq_gaps (device_id, first_seq, last_seq, detected_at) "
        "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[]) "
        "ON CONFLICT DO NOTHING",
        (list(device_ids), list(firsts), list(lasts), list(detected)),
    )


def fill_gaps(conn: Conn, arrivals: Sequence[tuple[int, int]]) -> None:
    """A late (device_id, seq) arrived: split or remove the gap that contained it."""
    if not arrivals:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            WITH hit AS (
                DELETE FROM ingest_seq_gaps
                WHERE device_id = %(d)s AND first_seq <= %(s)s AND last_seq >= %(s)s
                RETURNING device_id, first_seq, last_seq, detected_at
            )
            INSERT INTO ingest_seq_gaps (device_id, first_seq, last_seq, detected_at)
            SELECT device_id, first_seq, %(s)s - 1, detected_at FROM hit WHERE first_seq < %(s)s
            UNION ALL
            SELECT device_id, %(s)s + 1, last_seq, detected_at FROM hit WHERE last_seq > %(s)s
            """,
            [{"d": d, "s": s} for d, s in arrivals],
        )


def open_gaps(conn: Conn, device_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Open sequence gaps, newest first, of one device or of all."""
    return conn.execute(
        """
        SELECT d.uid AS device_uid, g.first_seq, g.last_seq,
               g.last_seq - g.first_seq + 1 AS missing, g.detected_at
        FROM ingest_seq_gaps g JOIN devices d ON d.id = g.device_id
        WHERE %(device)s::bigint IS NULL OR g.device_id = %(device)s
        ORDER BY g.detected_at DESC, g.device_id, g.first_seq LIMIT %(limit)s
        """,
        {"device": device_id, "limit": limit},
    ).fetchall()


def recent_dead_letters(conn: Conn, reason: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest dead letters, optionally of one reason."""
    return conn.execute(
        """
        SELECT id, received_at, topic, device_uid, reason, detail, payload, payload_size
        FROM ingest_dead_letters
        WHERE %(reason)s::text IS NULL OR reason = %(reason)s
        ORDER BY received_at DESC, id DESC LIMIT %(limit)s
        """,
        {"reason": reason, "limit": limit},
    ).fetchall()


def dead_letter_counts(conn: Conn, since: datetime) -> dict[str, int]:
    """Dead letters per reason since a time."""
    rows = conn.execute(
        "SELECT reason, count(*) AS n FROM ingest_dead_letters WHERE received_at >= %s "
        "GROUP BY reason",
        (since,),
    ).fetchall()
    return {row["reason"]: row["n"] for row in rows}


def recent_quarantine(conn: Conn, device_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Newest quarantined readings, of one device or of all."""
    return conn.execute(
        """
        SELECT q.id, d.uid AS device_uid, q.seq, q.device_ts, q.received_at, q.reason
        FROM ingest_quarantine q JOIN devices d ON d.id = q.device_id
        WHERE %(device)s::bigint IS NULL OR q.device_id = %(device)s
        ORDER BY q.received_at DESC, q.id DESC LIMIT %(limit)s
        """,
        {"device": device_id, "limit": limit},
    ).fetchall()
