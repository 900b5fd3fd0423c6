"""Alerts: list and read them with their history; staff acknowledge and clear them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.audit import AuditAction
from api.audit_trail import Trail, audited
from api.deps import DEVICE_UID_PATTERN, StaffOnly, SyncDbConn
from api.errors import Conflict, NotFound
from api.pagination import Page, Pagination
from rules import service
from rules.errors import AlertNotFound, AlertTransitionError
from rules.models import Alert, AlertHistoryEntry

router = APIRouter(prefix="/alerts", tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**62)]
StatusFilter = Literal["open", "active", "acknowledged", "cleared"]


class AlertNote(BaseModel):
    """An optional note for the alert's history."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=500)


@router.get("", response_model=Page[Alert], summary="List alerts, newest first")
def list_alerts(
    conn: SyncDbConn,
    _: StaffOnly,
    page: Pagination,
    status: Annotated[
        StatusFilter | None, Query(description="'open' = active or acknowledged")
    ] = None,
    device_uid: Annotated[str | None, Query(pattern=DEVICE_UID_PATTERN, max_length=64)] = None,
) -> Page[Alert]:
    """Alerts filtered by status and device."""
    after = (int(page.after[0]),) if page.after else None
    rows = service.list_alerts(
        conn, status=status, device_uid=device_uid, limit=page.limit + 1, before_id=after
    )
    return page.page(rows, key=lambda a: [a.id])


@router.get("/{alert_id}", response_model=Alert, summary="Read an alert")
def get_alert(alert_id: AlertId, conn: SyncDbConn, _: StaffOnly) -> Alert:
    """One alert."""
    try:
        return service.get_alert(conn, alert_id)
    except AlertNotFound as exc:
        raise NotFound("no such alert") from exc


@router.get(
    "/{alert_id}/history", response_model=list[AlertHistoryEntry], summary="An alert's history"
)
def get_history(alert_id: AlertId, conn: SyncDbConn, _: StaffOnly) -> list[AlertHistoryEntry]:
    """Every status change of an alert, oldest first."""
    try:
        return service.alert_history(conn, alert_id)
    except AlertNotFound as exc:
        raise NotFound("no such alert") from exc


@router.post("/{alert_id}/acknowledge", response_model=Alert, summary="Acknowledge an alert")
@audited(AuditAction.ALERT_ACKNOWLEDGED, target_kind="alert", target_param="alert_id")
def acknowledge(
    alert_id: AlertId, body: AlertNote, conn: SyncDbConn, principal: StaffOnly, trail: Trail
) -> Alert:
    """Active → acknowledged (409 if it is not active)."""
    try:
        alert = service.acknowledge_alert(
            conn, alert_id, actor=principal.public_id, at=datetime.now(UTC), note=body.note
        )
    except AlertNotFound as exc:
        raise NotFound("no such alert") from exc
    except AlertTransitionError as exc:
        raise Conflict(str(exc)) from exc
    trail.record_sync(conn, details=alert_details(alert))
    return alert


@router.post("/{alert_id}/clear", response_model=Alert, summary="Clear an alert by hand")
@audited(AuditAction.ALERT_CLEARED, target_kind="alert", target_param="alert_id")
def clear(
    alert_id: AlertId, body: AlertNote, conn: SyncDbConn, principal: StaffOnly, trail: Trail
) -> Alert:
    """Active or acknowledged → cleared (409 if already cleared)."""
    try:
        alert = service.clear_alert(
            conn, alert_id, actor=principal.public_id, at=datetime.now(UTC), note=body.note
        )
    except AlertNotFound as exc:
        raise NotFound("no such alert") from exc
    except AlertTransitionError as exc:
        raise Conflict(str(exc)) from exc
    trail.record_sync(conn, details=alert_details(alert))
    return alert


def alert_details(alert: Alert) -> dict[str, str]:
    """What an alert event keeps besides the alert's id: its device and rule (notes stay out)."""
    return {"device": alert.device_uid, "rule": alert.rule_key}
