"""Read-only ingest health and telemetry queries for dashboards (no writes, no side effects)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import Connection
from psycopg.rows import DictRow

Conn = Connection[DictRow]
LAG_WINDOW_S = 300


@dataclass(frozen=True, slots=True)
class IngestHealth:
    """How ingest is doing right now and over the last day."""

    messages_per_s: float
    lag_s: float | None
    dead_letters_by_reason: dict[str, int]
    open_gaps: int
    missing_messages: int


def ingest_health(conn: Conn, *, rate_window_s: int = 60) -> IngestHealth:
    """Message rate over the last window, lag, dead letters by reason and sequence gaps."""
    # A narrow ts window lets partition pruning and the BRIN index touch only the newest pages.
    rate = conn.execute(
        """SELECT count(*) FILTER (WHERE received_at > now() - make_interval(secs => %(w)s)) AS n,
                  extract(epoch FROM now() - max(received_at))::float8 AS lag_s
           FROM telemetry WHERE ts > now() - make_interval(secs => %(recent)s)""",
        {"w": rate_window_s, "recent": max(rate_window_s, LAG_WINDOW_S)},
    ).fetchone()
    lag_s = rate["lag_s"] if rate else None
    if lag_s is None:  # nothing recent: how long since any device was heard from
        seen = conn.execute(
            "SELECT extract(epoch FROM now() - max(last_seen))::float8 AS s FROM device_twins"
        ).fetchone()
        lag_s = seen["s"] if seen else None
    dead = conn.execute(
        """SELECT reason, count(*) AS n FROM ingest_dead_letters
           WHERE received_at > now() - interval '24 hours' GROUP BY reason ORDER BY n DESC"""
    ).fetchall()
    gaps = conn.execute(
        """SELECT count(*) AS n, COALESCE(sum(last_seq - first_seq + 1), 0) AS missing
           FROM ingest_seq_gaps WHERE detected_at > now() - interval '24 hours'"""
    ).fetchone()
    return IngestHealth(
        messages_per_s=(rate["n"] if rate else 0) / rate_window_s,
        lag_s=lag_s,
        dead_letters_by_reason={r["reason"]: int(r["n"]) for r in dead},
        open_gaps=int(gaps["n"]) if gaps else 0,
        missing_messages=int(gaps["missing"]) if gaps else 0,
    )
