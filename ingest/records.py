"""What ingest hands to the steps that run inside its batch transaction (the rules step).

Ingest stores a batch, updates twins, then calls each `BatchStep` with the same connection
before committing, so rule state, alerts and moments commit (or roll back) with the
telemetry. Steps are wired in by the composition root; ingest never imports them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from psycopg import Connection
from psycopg.rows import DictRow


@dataclass(frozen=True, slots=True)
class AcceptedReading:
    """A validated reading that was stored (not a duplicate, not quarantined)."""

    device_id: int
    device_uid: str
    model_id: str
    seq: int
    ts: datetime
    received_at: datetime
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    """A validated device event that was stored."""

    device_id: int
    device_uid: str
    model_id: str
    seq: int
    ts: datetime
    received_at: datetime
    event: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """Everything one ingest transaction accepted, in device-time order per device."""

    readings: Sequence[AcceptedReading]
    events: Sequence[AcceptedEvent]


class BatchStep(Protocol):
    """A step that runs inside the ingest transaction, after telemetry and twins are written."""

    def __call__(self, conn: Connection[DictRow], batch: StoredBatch) -> None: ...
