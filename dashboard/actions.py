"""What operators change from the dashboard (alerts), done through the rules package."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from psycopg import Connection
from psycopg.rows import DictRow


class AlertActions(Protocol):
    """Acknowledge or clear an alert; return the alert's new status."""

    def acknowledge(self, conn: Connection[DictRow], alert_id: int, *, actor: str) -> str: ...

    def clear(self, conn: Connection[DictRow], alert_id: int, *, actor: str) -> str: ...


class RulesAlertActions:
    """The alert lifecycle as implemented by rules/service.py."""

    def _service(self) -> Any:
        return importlib.import_module("rules.service")

    def acknowledge(self, conn: Connection[DictRow], alert_id: int, *, actor: str) -> str:
        """Acknowledge through the rules service."""
        return str(self._service().acknowledge_alert(conn, alert_id, actor=actor))

    def clear(self, conn: Connection[DictRow], alert_id: int, *, actor: str) -> str:
        """Clear through the rules service."""
        return str(self._service().clear_alert(conn, alert_id, actor=actor))
