"""Read-side use cases for operators and the API: sequence gaps, dead letters, quarantine."""

from __future__ import annotations

from datetime import datetime

from ingest import repo
from ingest.models import DeadLetterPublic, QuarantinedPublic, SeqGapPublic

MAX_LIMIT = 1000
PREVIEW_BYTES = 512


class UnknownDevice(LookupError):
    """No device has this uid."""


def _device_id(conn: repo.Conn, device_uid: str | None) -> int | None:
    if device_uid is None:
        return None
    row = conn.execute("SELECT id FROM devices WHERE uid = %s", (device_uid,)).fetchone()
    if row is None:
        raise UnknownDevice(device_uid)
    return int(row["id"])


def _bounded(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))


def open_gaps(
    conn: repo.Conn, device_uid: str | None = None, limit: int = 100
) -> list[SeqGapPublic]:
    """Sequence numbers still missing, per device (all devices when uid is None)."""
    rows = repo.open_gaps(conn, _device_id(conn, device_uid), _bounded(limit))
    return [SeqGapPublic.model_validate(row) for row in rows]


def dead_letters(
    conn: repo.Conn, reason: str | None = None, limit: int = 100
) -> list[DeadLetterPublic]:
    """Newest dead letters, payload shown as escaped text (never executed or rendered raw)."""
    rows = repo.recent_dead_letters(conn, reason, _bounded(limit))
    return [
        DeadLetterPublic(
            id=row["id"],
            received_at=row["received_at"],
            topic=row["topic"],
            device_uid=row["device_uid"],
            reason=row["reason"],
            detail=row["detail"],
            payload_preview=bytes(row["payload"][:PREVIEW_BYTES]).decode(
                "utf-8", "backslashreplace"
            ),
            payload_size=row["payload_size"],
        )
        for row in rows
    ]


def dead_letter_counts(conn: repo.Conn, since: datetime) -> dict[str, int]:
    """Dead letters per reason since a time."""
    return repo.dead_letter_counts(conn, since)


def quarantined(
    conn: repo.Conn, device_uid: str | None = None, limit: int = 100
) -> list[QuarantinedPublic]:
    """Newest readings kept out of telemetry for clock skew."""
    rows = repo.recent_quarantine(conn, _device_id(conn, device_uid), _bounded(limit))
    return [QuarantinedPublic.model_validate(row) for row in rows]
