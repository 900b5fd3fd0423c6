"""Errors of the ingest package; the kind decides ack, retry or dead letter.

IngestError
├── RejectedMessage      permanent, one message: dead-letter it with its reason, then ack
└── TransientStoreError  the database is unavailable for now: do not ack, back off, retry
"""

from __future__ import annotations

from ingest.models import DeadLetterReason


class IngestError(Exception):
    """Base of every ingest error."""


class RejectedMessage(IngestError):
    """A message that can never be stored as sent."""

    def __init__(self, reason: DeadLetterReason, detail: str, device_uid: str | None = None):
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.device_uid = device_uid


class TransientStoreError(IngestError):
    """The database failed in a way that may pass: the batch is retried, never acked."""
