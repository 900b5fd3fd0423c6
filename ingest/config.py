"""Ingest settings (part of the one Kizuna settings object)."""

from pydantic import BaseModel, Field


class IngestConfig(BaseModel):
    """Batching, session and validation limits for the MQTT ingest worker."""

    client_id: str = "kizuna-ingest"
    shared_group: str | None = None
    batch_max_messages: int = Field(default=2000, ge=1)
    batch_max_wait_ms: int = Field(default=50, ge=1)
    max_payload_bytes: int = Field(default=65_536, ge=256)
    max_future_skew_s: int = Field(default=300, ge=0)
    max_age_days: int = Field(default=30, ge=1)
