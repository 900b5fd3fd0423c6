"""What operators change from the dashboard (alerts), done through the rules service.

Each change is written to the audit log in the same transaction, with the same action names
as the API's (`alert.acknowledged`, `alert.cleared`), so the log does not depend on which
screen a person used.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import structlog
from psycopg import Connection
from psycopg.rows import DictRow

from api import audit
from api.audit import AuditAction
from dashboard.auth import Principal
from rules import service as rules_service
from rules.errors import AlertNotFound, RulesError
from rules.models import Alert

log = structlog.get_logger(__name__)


class AlertActions(Protocol):
    """Acknowledge or clear an alert; return the alert's status afterwards (or why not)."""

    def acknowledge(
        self, conn: Connection[DictRow], alert_id: int, *, actor: Principal, client: str | None
    ) -> str: ...

    def clear(
        self, conn: Connection[DictRow], alert_id: int, *, actor: Principal, client: str | None
    ) -> str: ...


def record_person_action(
    conn: Connection[DictRow],
    action: AuditAction,
    actor: Principal,
    *,
    target: tuple[str, str | None],
    client: str | None,
    outcome: str = "success",
    details: dict[str, object] | None = None,
) -> None:
    """An audit event for something a signed-in person did in the dashboard."""
    audit.record_sync(
        conn,
        action,
        actor=("user", actor.user_id, actor.role),
        target_kind=target[0],
        target_id=target[1],
        outcome=outcome,
        client=client,
        details={**(details or {}), "via": "dashboard"},
    )


class RulesAlertActions:
    """The alert lifecycle as rules/service.py implements it (with history and audit)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock

    def acknowledge(
        self, conn: Connection[DictRow], alert_id: int, *, actor: Principal, client: str | None
    ) -> str:
        """active → acknowledged."""
        return self._change(
            conn,
            alert_id,
            actor,
            client,
            AuditAction.ALERT_ACKNOWLEDGED,
            rules_service.acknowledge_alert,
        )

    def clear(
        self, conn: Connection[DictRow], alert_id: int, *, actor: Principal, client: str | None
    ) -> str:
        """active/acknowledged → cleared."""
        return self._change(
            conn, alert_id, actor, client, AuditAction.ALERT_CLEARED, rules_service.clear_alert
        )

    def _change(
        self,
        conn: Connection[DictRow],
        alert_id: int,
        actor: Principal,
        client: str | None,
        action: AuditAction,
        change: Callable[..., Alert],
    ) -> str:
        target = ("alert", str(alert_id))
        try:
            alert = change(conn, alert_id, actor=actor.user_id, at=self._clock())
        except RulesError as exc:
            log.info("dashboard.alert_action_refused", alert_id=alert_id, action=str(action))
            outcome = "denied" if isinstance(exc, AlertNotFound) else "failure"
            record_person_action(conn, action, actor, target=target, client=client, outcome=outcome)
            return str(exc)
        record_person_action(
            conn,
            action,
            actor,
            target=target,
            client=client,
            details={"device": alert.device_uid, "rule": alert.rule_key},
        )
        return str(alert.status)
