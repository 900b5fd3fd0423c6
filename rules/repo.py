"""SQL of the rules package: rules, rule state and timers, alerts, moments and other effects."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import Connection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from rules.engine import DeviceInfo, RuleState

Conn = Connection[DictRow]


def to_dt(ts: float) -> datetime:
    """Epoch seconds → aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


# ---------------------------------------------------------------- rules


def rules_fingerprint(conn: Conn) -> tuple[Any, ...]:
    """Changes whenever any rule is added, edited, enabled, disabled or deleted."""
    row = conn.execute(
        "SELECT count(*) AS n, coalesce(max(updated_at), 'epoch') AS t,"
        " coalesce(sum(version), 0) AS v FROM rules"
    ).fetchone()
    assert row is not None
    return (row["n"], row["t"], row["v"])


def live_rules(conn: Conn) -> list[DictRow]:
    """Every enabled, not deleted rule."""
    return conn.execute(
        "SELECT id, key, version, spec, scope_model_id, scope_device_id, scope_customer_id"
        " FROM rules WHERE enabled AND deleted_at IS NULL ORDER BY id"
    ).fetchall()


def device_infos(conn: Conn, device_ids: Sequence[int]) -> dict[int, DeviceInfo]:
    """Model, registered location, owners and the owner's time zone of each device."""
    rows = conn.execute(
        """
        SELECT d.id, d.model_id, d.latitude, d.longitude,
               array_remove(array_agg(o.customer_id), NULL) AS customer_ids,
               max(c.time_zone) FILTER (WHERE o.role = 'owner') AS time_zone
        FROM devices d
        LEFT JOIN device_ownerships o ON o.device_id = d.id AND o.ended_at IS NULL
        LEFT JOIN customers c ON c.id = o.customer_id
        WHERE d.id = ANY(%s)
        GROUP BY d.id
        """,
        (list(device_ids),),
    ).fetchall()
    return {row["id"]: _device_info(row) for row in rows}


def _device_info(row: DictRow) -> DeviceInfo:
    home = None
    if row["latitude"] is not None and row["longitude"] is not None:
        home = (row["latitude"], row["longitude"])
    try:
        zone = ZoneInfo(row["time_zone"] or "Asia/Tokyo")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("Asia/Tokyo")
    return DeviceInfo(row["id"], row["model_id"], home, zone, frozenset(row["customer_ids"]))


# ---------------------------------------------------------------- state and timers

_STATE_COLUMNS = "rule_id, device_id, rule_version, state, holding, last_ts, due_at"


def _rule_state(row: DictRow) -> RuleState:
    return RuleState(
        rule_id=row["rule_id"],
        device_id=row["device_id"],
        version=row["rule_version"],
        state=row["state"],
        holding=row["holding"],
        last_ts=_ts(row["last_ts"]),
        due_at=_ts(row["due_at"]),
        stored=True,
    )


def lock_states(conn: Conn, device_ids: Sequence[int]) -> dict[tuple[int, int], RuleState]:
    """Rule states of these devices, locked until the transaction ends (waits for the scheduler)."""
    rows = conn.execute(
        f"SELECT {_STATE_COLUMNS} FROM rule_states WHERE device_id = ANY(%s)"
        " ORDER BY rule_id, device_id FOR UPDATE",
        (list(device_ids),),
    ).fetchall()
    return {(row["rule_id"], row["device_id"]): _rule_state(row) for row in rows}


def claim_due(conn: Conn, now: datetime, limit: int) -> list[RuleState]:
    """Due timers no one else is handling, locked for this transaction."""
    rows = conn.execute(
        f"SELECT {_STATE_COLUMNS} FROM rule_states WHERE due_at <= %s"
        " ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    ).fetchall()
    return [_rule_state(row) for row in rows]


def save_states(conn: Conn, states: Iterable[RuleState]) -> None:
    """Write changed states (insert new ones): COPY into a scratch table, then one upsert."""
    changed = [rs for rs in states if rs.changed]
    if not changed:
        return
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS rule_states_incoming"
            " (LIKE rule_states INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY rule_states_incoming ({_STATE_COLUMNS}) FROM STDIN") as copy:
            for rs in changed:
                copy.write_row(
                    (
                        rs.rule_id,
                        rs.device_id,
                        rs.version,
                        Jsonb(rs.state),
                        rs.holding,
                        None if rs.last_ts is None else to_dt(rs.last_ts),
                        None if rs.due_at is None else to_dt(rs.due_at),
                    )
                )
        cur.execute(
            f"INSERT INTO rule_states ({_STATE_COLUMNS}) SELECT {_STATE_COLUMNS}"
            " FROM rule_states_incoming"
            " ON CONFLICT (rule_id, device_id) DO UPDATE SET rule_version = excluded.rule_version,"
            " state = excluded.state, holding = excluded.holding, last_ts = excluded.last_ts,"
            " due_at = excluded.due_at, updated_at = now()"
        )
        cur.execute("DELETE FROM rule_states_incoming")  # a second call in this transaction


# ---------------------------------------------------------------- effects


def open_alert(
    conn: Conn,
    *,
    rule_id: int,
    device_id: int,
    severity: str,
    at: datetime,
    facts: dict[str, Any],
    dedup_key: str,
) -> None:
    """Open an alert (and its first history row) unless one is open for this device and rule.

    One statement with no result to wait for, so a batch of effects can be pipelined.
    """
    conn.execute(
        "WITH opened AS (INSERT INTO alerts (rule_id, device_id, severity, opened_at, facts,"
        " dedup_key) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id)"
        " INSERT INTO alert_history (alert_id, at, from_status, to_status, actor)"
        " SELECT id, %s, NULL, 'active', 'rules' FROM opened",
        (rule_id, device_id, severity, at, Jsonb(facts), dedup_key, at),
    )


def close_open_alert(
    conn: Conn, *, rule_id: int, device_id: int, at: datetime, reason: str, actor: str
) -> None:
    """Clear the open alert of this device and rule, if any, recording it in the history."""
    conn.execute(
        "WITH closed AS (UPDATE alerts a SET status = 'cleared', cleared_at = %(at)s,"
        " clear_reason = %(reason)s FROM alerts old WHERE a.id = old.id"
        " AND a.rule_id = %(rule)s AND a.device_id = %(device)s AND a.status <> 'cleared'"
        " RETURNING a.id, old.status AS previous)"
        " INSERT INTO alert_history (alert_id, at, from_status, to_status, actor)"
        " SELECT id, %(at)s, previous, 'cleared', %(actor)s FROM closed",
        {"at": at, "reason": reason, "rule": rule_id, "device": device_id, "actor": actor},
    )


def add_history(
    conn: Conn,
    alert_id: int,
    at: datetime,
    from_status: str | None,
    to_status: str,
    actor: str,
    note: str | None = None,
) -> None:
    """Record one status change of an alert."""
    conn.execute(
        "INSERT INTO alert_history (alert_id, at, from_status, to_status, actor, note)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, at, from_status, to_status, actor, note),
    )


def insert_moment(
    conn: Conn,
    *,
    device_id: int,
    kind: str,
    severity: str,
    at: datetime,
    facts: dict[str, Any],
    rule_id: int,
    dedup_key: str,
) -> None:
    """Hand a moment to notify/ (idempotent by dedup_key), linked to the alert of the same edge."""
    conn.execute(
        "INSERT INTO moments (device_id, kind, severity, occurred_at, facts, rule_id, alert_id,"
        " dedup_key) VALUES (%s, %s, %s, %s, %s, %s,"
        " (SELECT id FROM alerts WHERE dedup_key = %s), %s) ON CONFLICT (dedup_key) DO NOTHING",
        (device_id, kind, severity, at, Jsonb(facts), rule_id, dedup_key, dedup_key),
    )


def insert_operator_notice(
    conn: Conn,
    *,
    device_id: int,
    rule_id: int,
    severity: str,
    message: str,
    at: datetime,
    dedup_key: str,
) -> None:
    """Tell operators (idempotent by dedup_key), linked to the alert of the same edge."""
    conn.execute(
        "INSERT INTO operator_notifications (device_id, rule_id, alert_id, severity, message,"
        " occurred_at, dedup_key) VALUES (%s, %s, (SELECT id FROM alerts WHERE dedup_key = %s),"
        " %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING",
        (device_id, rule_id, dedup_key, severity, message, at, dedup_key),
    )


def insert_command_intent(
    conn: Conn,
    *,
    device_id: int,
    rule_id: int,
    name: str,
    args: dict[str, Any],
    at: datetime,
    dedup_key: str,
) -> None:
    """Record a command the rule wants sent (idempotent by dedup_key)."""
    conn.execute(
        "INSERT INTO rule_command_intents (device_id, rule_id, name, args, occurred_at, dedup_key)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING",
        (device_id, rule_id, name, Jsonb(args), at, dedup_key),
    )
