"""Read-only alert, moment and rule queries for dashboards (no writes, no side effects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import Connection
from psycopg.rows import DictRow

Conn = Connection[DictRow]
AlertStatus = Literal["active", "acknowledged", "cleared"]
SEVERITIES = ("critical", "warning", "info")
MAX_ROWS = 500


def open_alerts_by_severity(conn: Conn) -> dict[str, int]:
    """How many alerts are open (active or acknowledged), per severity."""
    rows = conn.execute(
        "SELECT severity, count(*) AS n FROM alerts WHERE status <> 'cleared' GROUP BY severity"
    ).fetchall()
    counts = dict.fromkeys(SEVERITIES, 0)
    counts.update({r["severity"]: int(r["n"]) for r in rows})
    return counts


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert with the device and rule it is about."""

    id: int
    device_uid: str
    model_id: str
    rule_key: str
    severity: str
    status: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None
    facts: dict[str, Any]


def list_alerts(
    conn: Conn,
    *,
    statuses: tuple[AlertStatus, ...] = ("active", "acknowledged"),
    device_id: int | None = None,
    limit: int = 100,
) -> list[AlertRow]:
    """Alerts in the given states, most severe and newest first."""
    rows = conn.execute(
        """SELECT a.id, d.uid AS device_uid, d.model_id, r.key AS rule_key, a.severity,
                  a.status, a.opened_at, a.acknowledged_at, a.acknowledged_by, a.cleared_at,
                  a.facts
           FROM alerts a JOIN devices d ON d.id = a.device_id JOIN rules r ON r.id = a.rule_id
           WHERE a.status = ANY(%(statuses)s)
             AND (%(device_id)s::bigint IS NULL OR a.device_id = %(device_id)s)
           ORDER BY array_position(ARRAY['critical','warning','info'], a.severity),
                    a.opened_at DESC
           LIMIT %(limit)s""",
        {"statuses": list(statuses), "device_id": device_id, "limit": min(limit, MAX_ROWS)},
    ).fetchall()
    return [AlertRow(**r) for r in rows]


@dataclass(frozen=True, slots=True)
class MomentRow:
    """A moment a rule decided was worth telling someone about."""

    id: int
    device_uid: str
    kind: str
    severity: str
    occurred_at: datetime
    rule_key: str | None
    facts: dict[str, Any]


def recent_moments(conn: Conn, *, device_id: int | None = None, limit: int = 50) -> list[MomentRow]:
    """The newest moments, for one device or the whole fleet."""
    rows = conn.execute(
        """SELECT m.id, d.uid AS device_uid, m.kind, m.severity, m.occurred_at,
                  r.key AS rule_key, m.facts
           FROM moments m JOIN devices d ON d.id = m.device_id
           LEFT JOIN rules r ON r.id = m.rule_id
           WHERE (%(device_id)s::bigint IS NULL OR m.device_id = %(device_id)s)
           ORDER BY m.occurred_at DESC LIMIT %(limit)s""",
        {"device_id": device_id, "limit": min(limit, MAX_ROWS)},
    ).fetchall()
    return [MomentRow(**r) for r in rows]


@dataclass(frozen=True, slots=True)
class RuleRow:
    """A rule, what it applies to, whether it is on, and how often it fired lately."""

    id: int
    key: str
    source: str
    scope: str
    enabled: bool
    version: int
    firings_24h: int
    last_fired_at: datetime | None
    open_alerts: int


def rules_overview(conn: Conn, *, limit: int = 200) -> list[RuleRow]:
    """Every live rule with its recent activity (moments fired and alerts open)."""
    rows = conn.execute(
        """SELECT r.id, r.key, r.source,
                  COALESCE('model:' || r.scope_model_id, 'device:' || r.scope_device_id,
                           'customer:' || r.scope_customer_id) AS scope,
                  r.enabled, r.version,
                  (SELECT count(*) FROM moments m WHERE m.rule_id = r.id
                     AND m.occurred_at > now() - interval '24 hours') AS firings_24h,
                  (SELECT max(m.occurred_at) FROM moments m WHERE m.rule_id = r.id)
                     AS last_fired_at,
                  (SELECT count(*) FROM alerts a WHERE a.rule_id = r.id
                     AND a.status <> 'cleared') AS open_alerts
           FROM rules r WHERE r.deleted_at IS NULL ORDER BY r.key LIMIT %s""",
        (min(limit, MAX_ROWS),),
    ).fetchall()
    return [RuleRow(**r) for r in rows]


def open_alert_counts_for_customer(conn: Conn, customer_id: int) -> dict[str, int]:
    """Open alerts on the devices a customer currently has, per severity."""
    rows = conn.execute(
        """SELECT a.severity, count(*) AS n FROM alerts a
           JOIN device_ownerships o ON o.device_id = a.device_id AND o.ended_at IS NULL
           WHERE o.customer_id = %s AND a.status <> 'cleared' GROUP BY a.severity""",
        (customer_id,),
    ).fetchall()
    counts = dict.fromkeys(SEVERITIES, 0)
    counts.update({r["severity"]: int(r["n"]) for r in rows})
    return counts
