"""Ingest's data: messages as received and decoded, outcomes, and the views the API serves.

Hot-path types are slotted dataclasses (one per message at 10k msg/s); what leaves through
the API is pydantic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from devices.catalog import ProductModel
from devices.protocol import Channel, CommandAck, DeviceEvent, DeviceStatus, Reading
from store.telemetry import SlotMap


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter table (stable: used in metrics and the API)."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_TOPIC = "bad_topic"
    INVALID_JSON = "invalid_json"
    SCHEMA_INVALID = "schema_invalid"
    METRIC_INVALID = "metric_invalid"
    UNKNOWN_EVENT = "unknown_event"
    NUL_CHARACTER = "nul_character"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_DECOMMISSIONED = "device_decommissioned"
    RETAINED_TELEMETRY = "retained_telemetry"
    DATABASE_REJECTED = "database_rejected"
    PROCESSING_FAILED = "processing_failed"


class QuarantineReason(StrEnum):
    """Why a valid reading was kept out of telemetry: its device time cannot be right."""

    CLOCK_FUTURE = "clock_future"
    CLOCK_UNSET = "clock_unset"
    CLOCK_TOO_OLD = "clock_too_old"


@dataclass(frozen=True, slots=True)
class Incoming:
    """One MQTT message as it arrived, before anything is trusted."""

    topic: str
    payload: bytes
    mid: int
    received_at: datetime
    retain: bool = False
    qos: int = 1
    connection: int = 0  # which broker connection it came on (its packet id is only valid there)


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """What ingest needs to know about a registered device."""

    device_id: int
    uid: str
    model: ProductModel
    slots: SlotMap
    decommissioned: bool = False


@dataclass(frozen=True, slots=True)
class Parsed:
    """A message whose topic and JSON are valid; `body` depends on the channel."""

    incoming: Incoming
    uid: str
    channel: Channel
    body: list[Reading] | DeviceEvent | DeviceStatus | CommandAck


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that is dead-lettered, with why."""

    incoming: Incoming
    reason: DeadLetterReason
    detail: str
    device_uid: str | None = None


@dataclass(slots=True)
class BatchResult:
    """What one committed batch did, for metrics and tests."""

    messages: int = 0
    readings_stored: int = 0
    events_stored: int = 0
    duplicates: int = 0
    status_applied: int = 0
    command_acks_applied: int = 0
    gaps_opened: int = 0
    seqs_missing: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)

    def add(self, other: BatchResult) -> None:
        """Accumulate another result into this one."""
        for name in (
            "messages",
            "readings_stored",
            "events_stored",
            "duplicates",
            "status_applied",
            "command_acks_applied",
            "gaps_opened",
            "seqs_missing",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.dead_letters.update(other.dead_letters)
        self.quarantined.update(other.quarantined)


class SeqGapPublic(BaseModel):
    """A run of sequence numbers a device skipped that has not arrived."""

    model_config = ConfigDict(frozen=True)

    device_uid: str
    first_seq: int
    last_seq: int
    missing: int
    detected_at: datetime


class DeadLetterPublic(BaseModel):
    """A dead-lettered message as operators see it (payload as escaped text, bounded)."""

    model_config = ConfigDict(frozen=True)

    id: int
    received_at: datetime
    topic: str
    device_uid: str | None
    reason: str
    detail: str
    payload_preview: str
    payload_size: int


class QuarantinedPublic(BaseModel):
    """A reading kept out of telemetry because its device time cannot be right."""

    model_config = ConfigDict(frozen=True)

    id: int
    device_uid: str
    seq: int
    device_ts: datetime
    received_at: datetime
    reason: str
