"""SQL of the rules package: rules, rule state and timers, alerts, moments and other effects."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from psycopg import Connection
from psycopg.rows import DictRow, tuple_row
from psycopg.types.json import Jsonb

from rules import pgarray
from rules.columnar import ColumnarWrites, PackedRows
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


def kept_rules(conn: Conn) -> list[DictRow]:
    """Every rule not deleted, enabled or not."""
    return conn.execute(
        "SELECT id, key, version, enabled, spec, scope_model_id, scope_device_id,"
        " scope_customer_id FROM rules WHERE deleted_at IS NULL ORDER BY id"
    ).fetchall()


def device_infos(conn: Conn, device_ids: Sequence[int]) -> dict[int, DeviceInfo]:
    """Model, registered location, owners and the owner's time zone of each device."""
    pgarray.use_on(conn)
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            """
            SELECT d.id, d.model_id, d.latitude, d.longitude,
                   array_remove(array_agg(o.customer_id), NULL) AS customer_ids,
                   max(c.time_zone) FILTER (WHERE o.role = 'owner') AS time_zone
            FROM devices d
            LEFT JOIN device_ownerships o ON o.device_id = d.id AND o.ended_at IS NULL
            LEFT JOIN customers c ON c.id = o.customer_id
            WHERE d.id = ANY(%b)
            GROUP BY d.id
            """,
            (pgarray.int8_array(device_ids),),
        ).fetchall()
    return {
        row[0]: DeviceInfo(row[0], row[1], _home(row[2], row[3]), _zone(row[5]), frozenset(row[4]))
        for row in rows
    }


def _home(latitude: float | None, longitude: float | None) -> tuple[float, float] | None:
    return None if latitude is None or longitude is None else (latitude, longitude)


@functools.lru_cache(maxsize=1024)
def _zone(name: str | None) -> ZoneInfo:
    """The owner's time zone (Asia/Tokyo without an owner or for an unknown name)."""
    try:
        return ZoneInfo(name or "Asia/Tokyo")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Tokyo")


# ---------------------------------------------------------------- state and timers

_STATE_COLUMNS = "rule_id, device_id, rule_version, state, holding, last_ts, due_at"


@dataclass(slots=True)
class LoadedStates:
    """The rule state of a batch's devices, from both stores, locked for the transaction."""

    engine: dict[tuple[int, int], RuleState]  # (rule id, device id) → rule_states row
    columnar: PackedRows  # columnar_rule_states rows


def _snapshot(rs: RuleState) -> tuple[Any, ...]:
    return (rs.version, rs.holding, rs.last_ts, rs.due_at, json.dumps(rs.state, sort_keys=True))


def _loaded_state(
    rule_id: int,
    device_id: int,
    version: int,
    state: dict[str, Any],
    holding: bool,
    last_ts: float | None,
    due_at: float | None,
) -> RuleState:
    rs = RuleState(rule_id, device_id, version, state, holding, last_ts, due_at, stored=True)
    rs.snapshot = _snapshot(rs)
    return rs


def _rule_state(row: DictRow) -> RuleState:
    return _loaded_state(
        row["rule_id"],
        row["device_id"],
        row["rule_version"],
        row["state"],
        row["holding"],
        _ts(row["last_ts"]),
        _ts(row["due_at"]),
    )


# Both stores in one statement, each locked in a fixed order. The three string_agg of the
# packed rows read the same rows in one pass, so their parts line up.
_LOCK_STATES = """
WITH engine AS (
    SELECT rule_id, device_id, rule_version, state, holding,
           extract(epoch FROM last_ts)::float8 AS last_ts,
           extract(epoch FROM due_at)::float8 AS due_at
    FROM rule_states WHERE device_id = ANY(%(devices)b) ORDER BY rule_id, device_id FOR UPDATE
), columnar AS (
    SELECT device_id, slots, raw_values FROM columnar_rule_states
    WHERE device_id = ANY(%(devices)b) ORDER BY device_id FOR UPDATE
)
SELECT e.rows AS engine, c.*
FROM (SELECT json_agg(json_build_array(rule_id, device_id, rule_version, state, holding,
                                       last_ts, due_at)) AS rows FROM engine) e,
     (SELECT string_agg(int8send(device_id), '') AS device_ids,
             string_agg(int4send(length(slots)), '') AS lengths,
             string_agg(slots, '') AS slots,
             json_object_agg(device_id, raw_values) FILTER (WHERE raw_values IS NOT NULL) AS raw
      FROM columnar) c
"""


def lock_states(conn: Conn, device_ids: Sequence[int]) -> LoadedStates:
    """Rule states of these devices in both stores, in one query, locked until the
    transaction ends (so a batch waits for the scheduler and the other way round)."""
    pgarray.use_on(conn)
    row = conn.execute(
        _LOCK_STATES, {"devices": pgarray.int8_array(device_ids)}, binary=True
    ).fetchone()
    assert row is not None
    engine = {
        (r[0], r[1]): _loaded_state(r[0], r[1], r[2], r[3], r[4], r[5], r[6])
        for r in row["engine"] or ()
    }
    columnar = PackedRows.empty()
    if row["device_ids"] is not None:
        columnar = PackedRows.from_parts(
            np.frombuffer(row["device_ids"], dtype=">i8"),
            row["slots"],
            np.frombuffer(row["lengths"], dtype=">i4"),
            row["raw"],
        )
    return LoadedStates(engine, columnar)


def all_states(conn: Conn) -> tuple[list[RuleState], PackedRows]:
    """Every stored rule state of both stores (to inspect them; not for the live path)."""
    engine = [_rule_state(row) for row in conn.execute(f"SELECT {_STATE_COLUMNS} FROM rule_states")]
    rows = conn.execute("SELECT device_id, slots, raw_values FROM columnar_rule_states").fetchall()
    packed = PackedRows.from_rows([(r["device_id"], r["slots"], r["raw_values"]) for r in rows])
    return engine, packed


def claim_due(conn: Conn, now: datetime, limit: int) -> list[RuleState]:
    """Due timers no one else is handling, locked for this transaction."""
    rows = conn.execute(
        f"SELECT {_STATE_COLUMNS} FROM rule_states WHERE due_at <= %s"
        " ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    ).fetchall()
    return [_rule_state(row) for row in rows]


def claim_due_columnar(conn: Conn, now: datetime, limit: int) -> PackedRows:
    """Packed rows with a due timer no one else is handling, locked for this transaction."""
    rows = conn.execute(
        "SELECT device_id, slots, raw_values FROM columnar_rule_states WHERE due_at <= %s"
        " ORDER BY due_at LIMIT %s FOR UPDATE SKIP LOCKED",
        (now, limit),
    ).fetchall()
    return PackedRows.from_rows([(r["device_id"], r["slots"], r["raw_values"]) for r in rows])


def save_states(conn: Conn, states: Iterable[RuleState]) -> int:
    """Write the states that differ from what was loaded (insert new ones), in one statement;
    how many were written."""
    changed = [rs for rs in states if rs.changed and rs.snapshot != _snapshot(rs)]
    if not changed:
        return 0
    conn.execute(
        f"INSERT INTO rule_states ({_STATE_COLUMNS})"
        " SELECT * FROM unnest(%s::int8[], %s::int8[], %s::int4[], %s::jsonb[], %s::bool[],"
        " %s::timestamptz[], %s::timestamptz[])"
        " ON CONFLICT (rule_id, device_id) DO UPDATE SET rule_version = excluded.rule_version,"
        " state = excluded.state, holding = excluded.holding, last_ts = excluded.last_ts,"
        " due_at = excluded.due_at, updated_at = now()",
        (
            [rs.rule_id for rs in changed],
            [rs.device_id for rs in changed],
            [rs.version for rs in changed],
            [Jsonb(rs.state) for rs in changed],
            [rs.holding for rs in changed],
            [None if rs.last_ts is None else to_dt(rs.last_ts) for rs in changed],
            [None if rs.due_at is None else to_dt(rs.due_at) for rs in changed],
        ),
    )
    return len(changed)


def delete_states(conn: Conn, pairs: Sequence[tuple[int, int]]) -> None:
    """Remove rule_states rows, as (rule id, device id), whose state moved to the other store."""
    if pairs:
        conn.execute(
            "DELETE FROM rule_states WHERE (rule_id, device_id) IN"
            " (SELECT * FROM unnest(%s::int8[], %s::int8[]))",
            ([p[0] for p in pairs], [p[1] for p in pairs]),
        )


def save_columnar(conn: Conn, writes: ColumnarWrites) -> int:
    """Upsert changed packed rows in one statement; delete rows left with nothing. How many
    rows were written."""
    if writes.device_ids:
        pgarray.use_on(conn)
        conn.execute(
            "INSERT INTO columnar_rule_states (device_id, slots, raw_values, due_at)"
            " SELECT d, s, r, CASE WHEN due = 'NaN' THEN NULL ELSE to_timestamp(due) END"
            " FROM unnest(%b, %b, %b, %b) AS u(d, s, r, due)"
            " ON CONFLICT (device_id) DO UPDATE SET slots = excluded.slots,"
            " raw_values = excluded.raw_values, due_at = excluded.due_at, updated_at = now()",
            (
                pgarray.int8_array(writes.device_ids),
                pgarray.bytea_array(writes.slots),
                pgarray.jsonb_array(writes.raw),
                pgarray.float8_array(writes.due_at),
            ),
        )
    if writes.deleted:
        conn.execute(
            "DELETE FROM columnar_rule_states WHERE device_id = ANY(%s)", (writes.deleted,)
        )
    return len(writes.device_ids)


# ---------------------------------------------------------------- effects
#
# Each function writes many effects in one statement with no result to wait for, so all of
# a batch's effects go to the server in one pipeline. A row's dedup_key makes it idempotent.

AlertOpening = tuple[int, int, str, datetime, dict[str, Any], str]
"""(rule id, device id, severity, at, facts, dedup key)"""
AlertClearing = tuple[int, int, datetime]
"""(rule id, device id, at)"""
MomentRow = tuple[int, str, str, datetime, dict[str, Any], int, str]
"""(device id, kind, severity, occurred at, facts, rule id, dedup key)"""
NoticeRow = tuple[int, int, str, str, datetime, str]
"""(device id, rule id, severity, message, occurred at, dedup key)"""
IntentRow = tuple[int, int, str, dict[str, Any], datetime, str]
"""(device id, rule id, command name, args, occurred at, dedup key)"""


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def open_alerts(conn: Conn, rows: Sequence[AlertOpening]) -> None:
    """Open alerts (and their first history rows), each unless one is already open for its
    device and rule. At most one row per device and rule per call."""
    if not rows:
        return
    rule_ids, device_ids, severities, ats, facts, keys = _columns(rows)
    pgarray.use_on(conn)
    conn.execute(
        "WITH opened AS (INSERT INTO alerts (rule_id, device_id, severity, opened_at, facts,"
        " dedup_key) SELECT * FROM unnest(%b, %b, %b, %b, %b, %b) ON CONFLICT DO NOTHING"
        " RETURNING id, opened_at)"
        " INSERT INTO alert_history (alert_id, at, from_status, to_status, actor)"
        " SELECT id, opened_at, NULL, 'active', 'rules' FROM opened",
        (
            pgarray.int8_array(rule_ids),
            pgarray.int8_array(device_ids),
            pgarray.text_array(severities),
            pgarray.timestamptz_array(ats),
            pgarray.jsonb_array([json.dumps(f) if f else "{}" for f in facts]),
            pgarray.text_array(keys),
        ),
    )


def close_alerts(conn: Conn, rows: Sequence[AlertClearing], *, reason: str, actor: str) -> None:
    """Clear the open alert of each (device, rule), if any, recording it in the history.
    At most one row per device and rule per call."""
    if not rows:
        return
    rule_ids, device_ids, ats = _columns(rows)
    pgarray.use_on(conn)
    conn.execute(
        "WITH wanted AS (SELECT * FROM unnest(%(rules)b, %(devices)b, %(ats)b)"
        " AS w(rule_id, device_id, at)),"
        " closed AS (UPDATE alerts a SET status = 'cleared', cleared_at = w.at,"
        " clear_reason = %(reason)s FROM alerts old, wanted w WHERE a.id = old.id"
        " AND a.rule_id = w.rule_id AND a.device_id = w.device_id AND a.status <> 'cleared'"
        " RETURNING a.id, old.status AS previous, w.at)"
        " INSERT INTO alert_history (alert_id, at, from_status, to_status, actor)"
        " SELECT id, at, previous, 'cleared', %(actor)s FROM closed",
        {
            "rules": pgarray.int8_array(rule_ids),
            "devices": pgarray.int8_array(device_ids),
            "ats": pgarray.timestamptz_array(ats),
            "reason": reason,
            "actor": actor,
        },
    )


def close_open_alert(
    conn: Conn, *, rule_id: int, device_id: int, at: datetime, reason: str, actor: str
) -> None:
    """Clear the open alert of this device and rule, if any, recording it in the history."""
    close_alerts(conn, [(rule_id, device_id, at)], reason=reason, actor=actor)


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


def insert_moments(conn: Conn, rows: Sequence[MomentRow]) -> None:
    """Hand moments to notify/ (idempotent by dedup_key), each linked to the alert its edge
    opened, if any (same dedup key)."""
    if not rows:
        return
    device_ids, kinds, severities, ats, facts, rule_ids, keys = _columns(rows)
    pgarray.use_on(conn)
    conn.execute(
        "INSERT INTO moments (device_id, kind, severity, occurred_at, facts, rule_id, alert_id,"
        " dedup_key) SELECT u.device_id, u.kind, u.severity, u.at, u.facts, u.rule_id,"
        " (SELECT id FROM alerts WHERE dedup_key = u.key), u.key"
        " FROM unnest(%b, %b, %b, %b, %b, %b, %b)"
        " AS u(device_id, kind, severity, at, facts, rule_id, key)"
        " ON CONFLICT (dedup_key) DO NOTHING",
        (
            pgarray.int8_array(device_ids),
            pgarray.text_array(kinds),
            pgarray.text_array(severities),
            pgarray.timestamptz_array(ats),
            pgarray.jsonb_array([json.dumps(f) for f in facts]),
            pgarray.int8_array(rule_ids),
            pgarray.text_array(keys),
        ),
    )


def insert_operator_notices(conn: Conn, rows: Sequence[NoticeRow]) -> None:
    """Tell operators (idempotent by dedup_key), linked to the alert of the same edge."""
    if not rows:
        return
    device_ids, rule_ids, severities, messages, ats, keys = _columns(rows)
    pgarray.use_on(conn)
    conn.execute(
        "INSERT INTO operator_notifications (device_id, rule_id, alert_id, severity, message,"
        " occurred_at, dedup_key) SELECT u.device_id, u.rule_id,"
        " (SELECT id FROM alerts WHERE dedup_key = u.key), u.severity, u.message, u.at, u.key"
        " FROM unnest(%b, %b, %b, %b, %b, %b)"
        " AS u(device_id, rule_id, severity, message, at, key)"
        " ON CONFLICT (dedup_key) DO NOTHING",
        (
            pgarray.int8_array(device_ids),
            pgarray.int8_array(rule_ids),
            pgarray.text_array(severities),
            pgarray.text_array(messages),
            pgarray.timestamptz_array(ats),
            pgarray.text_array(keys),
        ),
    )


def insert_command_intents(conn: Conn, rows: Sequence[IntentRow]) -> None:
    """Record commands rules want sent (idempotent by dedup_key)."""
    if not rows:
        return
    device_ids, rule_ids, names, args, ats, keys = _columns(rows)
    pgarray.use_on(conn)
    conn.execute(
        "INSERT INTO rule_command_intents (device_id, rule_id, name, args, occurred_at,"
        " dedup_key) SELECT * FROM unnest(%b, %b, %b, %b, %b, %b)"
        " ON CONFLICT (dedup_key) DO NOTHING",
        (
            pgarray.int8_array(device_ids),
            pgarray.int8_array(rule_ids),
            pgarray.text_array(names),
            pgarray.jsonb_array([json.dumps(a) for a in args]),
            pgarray.timestamptz_array(ats),
            pgarray.text_array(keys),
        ),
    )
