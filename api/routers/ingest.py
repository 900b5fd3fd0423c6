"""Ingest operations for staff: sequence gaps, dead letters, quarantined readings, health."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import DEVICE_UID_PATTERN, SettingsDep, StaffOnly, SyncDbConn
from api.errors import NotFound
from ingest import queries
from ingest.health import probe
from ingest.models import DeadLetterPublic, DeadLetterReason, QuarantinedPublic, SeqGapPublic

router = APIRouter(prefix="/ingest", tags=["ingest"])

Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)]
DeviceUid = Annotated[str | None, Query(pattern=DEVICE_UID_PATTERN, max_length=64)]


@router.get("/gaps", response_model=list[SeqGapPublic], summary="Missing sequence numbers")
def list_gaps(
    conn: SyncDbConn, _: StaffOnly, device_uid: DeviceUid = None, limit: Limit = 100
) -> list[SeqGapPublic]:
    """Runs of seq a device skipped that have not arrived, newest first."""
    try:
        return queries.open_gaps(conn, device_uid, limit)
    except queries.UnknownDevice as exc:
        raise NotFound("no such device") from exc


@router.get("/dead-letters", response_model=list[DeadLetterPublic], summary="Refused messages")
def list_dead_letters(
    conn: SyncDbConn,
    _: StaffOnly,
    reason: DeadLetterReason | None = None,
    limit: Limit = 100,
) -> list[DeadLetterPublic]:
    """Newest dead-lettered messages with their reason and a bounded payload preview."""
    return queries.dead_letters(conn, reason.value if reason else None, limit)


@router.get("/dead-letters/counts", summary="Refused messages per reason")
def dead_letter_counts(
    conn: SyncDbConn, _: StaffOnly, hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24
) -> dict[str, int]:
    """How many messages were dead-lettered per reason in the last `hours`."""
    return queries.dead_letter_counts(conn, datetime.now(UTC) - timedelta(hours=hours))


@router.get("/quarantine", response_model=list[QuarantinedPublic], summary="Clock-skewed readings")
def list_quarantine(
    conn: SyncDbConn, _: StaffOnly, device_uid: DeviceUid = None, limit: Limit = 100
) -> list[QuarantinedPublic]:
    """Readings kept out of telemetry because their device time cannot be right."""
    try:
        return queries.quarantined(conn, device_uid, limit)
    except queries.UnknownDevice as exc:
        raise NotFound("no such device") from exc


@router.get("/health", summary="Can ingest reach its database and broker?")
def ingest_health(settings: SettingsDep, _: StaffOnly) -> JSONResponse:
    """200 when the database and the broker answer, 503 otherwise (no details of errors)."""
    if not settings.database_url or not settings.mqtt_url:
        return JSONResponse({"ok": False, "error": "not configured"}, status_code=503)
    report = probe(settings.database_url, settings.mqtt_url)
    return JSONResponse(report, status_code=200 if report["ok"] else 503)
