"""Use cases: manage rules, install the built-in packs, and move alerts through their lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from devices.catalog import builtin_models
from rules import repo
from rules.errors import (
    AlertNotFound,
    AlertTransitionError,
    InvalidRuleSpec,
    RuleConflict,
    RuleNotFound,
)
from rules.models import Alert, AlertHistoryEntry, Rule, RuleSpec, parse_rule_spec
from rules.packs import builtin_packs, model_problems

log = structlog.get_logger(__name__)

_RULE_COLUMNS = "id, key, source, spec, version, created_at, updated_at"


def _rule(row: dict[str, Any]) -> Rule:
    return Rule(
        id=row["id"],
        key=row["key"],
        source=row["source"],
        spec=RuleSpec.model_validate(row["spec"]),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _resolve_scope(conn: repo.Conn, spec: RuleSpec) -> dict[str, Any]:
    """Scope column values, checking the product model, device or customer exists."""
    scope = spec.scope
    if scope.model is not None:
        model = builtin_models().get(scope.model)
        if model is None:
            raise InvalidRuleSpec([{"path": "scope.model", "reason": "unknown product model"}])
        problems = model_problems(spec, model)
        if problems:
            raise InvalidRuleSpec(problems)
        return {"scope_model_id": scope.model, "scope_device_id": None, "scope_customer_id": None}
    if scope.device is not None:
        row = conn.execute(
            "SELECT id, model_id FROM devices WHERE uid = %s", (scope.device,)
        ).fetchone()
        if row is None:
            raise InvalidRuleSpec([{"path": "scope.device", "reason": "unknown device"}])
        model = builtin_models().get(row["model_id"])
        if model is not None and (problems := model_problems(spec, model)):
            raise InvalidRuleSpec(problems)
        return {"scope_model_id": None, "scope_device_id": row["id"], "scope_customer_id": None}
    try:
        row = conn.execute(
            "SELECT id FROM customers WHERE public_id = %s::uuid AND erased_at IS NULL",
            (scope.customer,),
        ).fetchone()
    except pg_errors.InvalidTextRepresentation:
        row = None
    if row is None:
        raise InvalidRuleSpec([{"path": "scope.customer", "reason": "unknown customer"}])
    return {"scope_model_id": None, "scope_device_id": None, "scope_customer_id": row["id"]}


def create_rule(conn: repo.Conn, data: Any, *, source: str = "api") -> Rule:
    """Validate and store a new rule; InvalidRuleSpec or RuleConflict on bad input."""
    spec = data if isinstance(data, RuleSpec) else parse_rule_spec(data)
    with conn.transaction():
        scope = _resolve_scope(conn, spec)
        row = conn.execute(
            f"INSERT INTO rules (key, source, spec, enabled, scope_model_id, scope_device_id,"
            f" scope_customer_id) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            f" ON CONFLICT (key) DO NOTHING RETURNING {_RULE_COLUMNS}",
            (
                spec.key,
                source,
                Jsonb(spec.model_dump(mode="json", by_alias=True, exclude_none=True)),
                spec.enabled,
                scope["scope_model_id"],
                scope["scope_device_id"],
                scope["scope_customer_id"],
            ),
        ).fetchone()
    if row is None:
        raise RuleConflict(f"a rule with key {spec.key!r} already exists")
    log.info("rules.rule_created", rule_id=row["id"], key=spec.key, source=source)
    return _rule(row)


def update_rule(conn: repo.Conn, rule_id: int, data: Any) -> Rule:
    """Replace a rule's spec (its key stays); conditions restart for every device."""
    spec = data if isinstance(data, RuleSpec) else parse_rule_spec(data)
    with conn.transaction():
        current = get_rule(conn, rule_id)
        if spec.key != current.key:
            raise InvalidRuleSpec([{"path": "key", "reason": "the key of a rule cannot change"}])
        scope = _resolve_scope(conn, spec)
        row = conn.execute(
            f"UPDATE rules SET spec = %s, enabled = %s, scope_model_id = %s, scope_device_id = %s,"
            f" scope_customer_id = %s, version = version + 1, updated_at = now()"
            f" WHERE id = %s AND deleted_at IS NULL RETURNING {_RULE_COLUMNS}",
            (
                Jsonb(spec.model_dump(mode="json", by_alias=True, exclude_none=True)),
                spec.enabled,
                scope["scope_model_id"],
                scope["scope_device_id"],
                scope["scope_customer_id"],
                rule_id,
            ),
        ).fetchone()
    if row is None:
        raise RuleNotFound(f"no rule {rule_id}")
    log.info("rules.rule_updated", rule_id=rule_id, version=row["version"])
    return _rule(row)


def get_rule(conn: repo.Conn, rule_id: int) -> Rule:
    """One live rule by id."""
    row = conn.execute(
        f"SELECT {_RULE_COLUMNS} FROM rules WHERE id = %s AND deleted_at IS NULL", (rule_id,)
    ).fetchone()
    if row is None:
        raise RuleNotFound(f"no rule {rule_id}")
    return _rule(row)


def list_rules(conn: repo.Conn, *, limit: int = 100, after_id: int = 0) -> list[Rule]:
    """Live rules by id, from just after `after_id` (keyset pagination)."""
    rows = conn.execute(
        f"SELECT {_RULE_COLUMNS} FROM rules WHERE deleted_at IS NULL AND id > %s ORDER BY id"
        " LIMIT %s",
        (after_id, limit),
    ).fetchall()
    return [_rule(row) for row in rows]


def delete_rule(conn: repo.Conn, rule_id: int, *, actor: str, at: datetime) -> None:
    """Retire a rule: clear its open alerts, drop its state; history stays."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE rules SET deleted_at = %s, enabled = false, updated_at = now()"
            " WHERE id = %s AND deleted_at IS NULL RETURNING id",
            (at, rule_id),
        ).fetchone()
        if row is None:
            raise RuleNotFound(f"no rule {rule_id}")
        open_alerts = conn.execute(
            "SELECT device_id FROM alerts WHERE rule_id = %s AND status <> 'cleared'", (rule_id,)
        ).fetchall()
        for alert in open_alerts:
            repo.close_open_alert(
                conn,
                rule_id=rule_id,
                device_id=alert["device_id"],
                at=at,
                reason="rule_changed",
                actor=actor,
            )
        conn.execute("DELETE FROM rule_states WHERE rule_id = %s", (rule_id,))
    log.info("rules.rule_deleted", rule_id=rule_id)


def install_builtin_packs(conn: repo.Conn) -> dict[str, int]:
    """Add or update every built-in rule (source 'pack'); returns counts of created/updated."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    for pack in builtin_packs().values():
        for spec in pack.rules:
            counts[_install_one(conn, spec)] += 1
    log.info("rules.packs_installed", **counts)
    return counts


def _install_one(conn: repo.Conn, spec: RuleSpec) -> str:
    row = conn.execute(
        "SELECT id, spec, source FROM rules WHERE key = %s AND deleted_at IS NULL", (spec.key,)
    ).fetchone()
    if row is None:
        create_rule(conn, spec, source="pack")
        return "created"
    if row["source"] != "pack" or RuleSpec.model_validate(row["spec"]) == spec:
        return "unchanged"  # an operator's own rule with the same key wins
    update_rule(conn, row["id"], spec)
    return "updated"


# ---------------------------------------------------------------- alerts

_ALERT_SELECT = (
    "SELECT a.id, a.rule_id, r.key AS rule_key, a.device_id, d.uid AS device_uid, a.severity,"
    " a.status, a.opened_at, a.acknowledged_at, a.acknowledged_by, a.cleared_at,"
    " a.clear_reason, a.facts FROM alerts a JOIN rules r ON r.id = a.rule_id"
    " JOIN devices d ON d.id = a.device_id"
)


def list_alerts(
    conn: repo.Conn,
    *,
    status: str | None = None,
    device_id: int | None = None,
    device_uid: str | None = None,
    limit: int = 100,
    before_id: tuple[int] | None = None,
) -> list[Alert]:
    """Alerts, newest first; `status='open'` means active or acknowledged."""
    where: list[str] = ["true"]
    params: list[object] = []
    if status == "open":
        where.append("a.status <> 'cleared'")
    elif status is not None:
        where.append("a.status = %s")
        params.append(status)
    if device_id is not None:
        where.append("a.device_id = %s")
        params.append(device_id)
    if device_uid is not None:
        where.append("d.uid = %s")
        params.append(device_uid)
    if before_id is not None:
        where.append("a.id < %s")
        params.append(before_id[0])
    rows = conn.execute(
        f"{_ALERT_SELECT} WHERE {' AND '.join(where)} ORDER BY a.id DESC LIMIT %s",
        (*params, limit),
    ).fetchall()
    return [Alert.model_validate(row) for row in rows]


def get_alert(conn: repo.Conn, alert_id: int) -> Alert:
    """One alert by id."""
    row = conn.execute(f"{_ALERT_SELECT} WHERE a.id = %s", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFound(f"no alert {alert_id}")
    return Alert.model_validate(row)


def alert_history(conn: repo.Conn, alert_id: int) -> list[AlertHistoryEntry]:
    """Every status change of an alert, oldest first."""
    get_alert(conn, alert_id)
    rows = conn.execute(
        "SELECT alert_id, at, from_status, to_status, actor, note FROM alert_history"
        " WHERE alert_id = %s ORDER BY at, id",
        (alert_id,),
    ).fetchall()
    return [AlertHistoryEntry.model_validate(row) for row in rows]


def acknowledge_alert(
    conn: repo.Conn, alert_id: int, *, actor: str, at: datetime, note: str | None = None
) -> Alert:
    """An operator has seen an active alert (active → acknowledged)."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE alerts SET status = 'acknowledged', acknowledged_at = %s, acknowledged_by = %s"
            " WHERE id = %s AND status = 'active' RETURNING id",
            (at, actor, alert_id),
        ).fetchone()
        if row is None:
            current = get_alert(conn, alert_id)
            raise AlertTransitionError(f"alert {alert_id} is {current.status}, not active")
        repo.add_history(conn, alert_id, at, "active", "acknowledged", actor, note)
    log.info("rules.alert_acknowledged", alert_id=alert_id)
    return get_alert(conn, alert_id)


def clear_alert(
    conn: repo.Conn, alert_id: int, *, actor: str, at: datetime, note: str | None = None
) -> Alert:
    """An operator closes an open alert by hand (active/acknowledged → cleared)."""
    with conn.transaction():
        row = conn.execute(
            "SELECT status FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)
        ).fetchone()
        if row is None:
            raise AlertNotFound(f"no alert {alert_id}")
        if row["status"] == "cleared":
            raise AlertTransitionError(f"alert {alert_id} is already cleared")
        conn.execute(
            "UPDATE alerts SET status = 'cleared', cleared_at = %s, clear_reason = 'manual'"
            " WHERE id = %s",
            (at, alert_id),
        )
        repo.add_history(conn, alert_id, at, row["status"], "cleared", actor, note)
    log.info("rules.alert_cleared", alert_id=alert_id, reason="manual")
    return get_alert(conn, alert_id)
