"""Ingest settings (part of the one Kizuna settings object)."""

from typing import Literal

from pydantic import BaseModel, Field


class IngestConfig(BaseModel):
    """Batching, session and validation limits for the MQTT ingest worker."""

    client_id: str = "kizuna-ingest"
    shared_group: str | None = Field(
        default=None, description="MQTT 5 shared-subscription group; set to run several workers."
    )
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    batch_max_messages: int = Field(default=2000, ge=1)
    batch_max_wait_ms: int = Field(default=50, ge=1)
    # MQTT 5 flow control: the broker sends at most this many unacked messages, which bounds
    # ingest's memory under a slow database (backpressure instead of an unbounded queue).
    receive_maximum: int = Field(default=10_000, ge=1, le=65_535)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    keepalive_s: int = Field(default=30, ge=5)
    max_payload_bytes: int = Field(default=65_536, ge=256)
    dead_letter_max_bytes: int = Field(default=4096, ge=0)
    max_future_skew_s: int = Field(default=300, ge=0)
    max_age_days: int = Field(default=30, ge=1)
    device_cache_ttl_s: float = Field(default=60.0, ge=0)
    unknown_device_cache_ttl_s: float = Field(default=5.0, ge=0)
    retry_max_backoff_s: float = Field(default=5.0, gt=0)
    partition_check_interval_s: float = Field(default=3600.0, gt=0)
    metrics_port: int | None = Field(default=None, ge=0, le=65_535)
