"""What operators change from the dashboard (alerts), done through the rules service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

import structlog
from psycopg import Connection
from psycopg.rows import DictRow

from rules import service as rules_service
from rules.errors import RulesError

log = structlog.get_logger(__name__)


class AlertActions(Protocol):
    """Acknowledge or clear an alert; return the alert's status afterwards (or why not)."""

    def acknowledge(self, conn: Connection[DictRow], alert_id: int, *, actor: str) -> str: ...

    def clear(self, conn: Connection[DictRow], alert_id: int, *, actor: str) -> str: ...


class RulesAlertActions:
    """The alert lifecycle as rules/service.py implements it (with history and audit actor)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock

    def acknowledge(self, conn: Connection[DictRow], alert_id: int, *, actor: str) -> str:
        """active → acknowledged."""
        try:
            alert = rules_service.acknowledge_alert(conn, alert_id, actor=actor, at=self._clock())
        except RulesError as exc:
            log.info("dashboard.alert_action_refused", alert_id=alert_id, action="acknowledge")
            return str(exc)
        return str(alert.status)

    def clear(self, conn: Connection[DictRow], alert_id: int, *, actor: str) -> str:
        """active/acknowledged → cleared."""
        try:
            alert = rules_service.clear_alert(conn, alert_id, actor=actor, at=self._clock())
        except RulesError as exc:
            log.info("dashboard.alert_action_refused", alert_id=alert_id, action="clear")
            return str(exc)
        return str(alert.status)
