"""Ingest settings (part of the one Kizuna settings object)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


class IngestConfig(BaseModel):
    """Batching, session and validation limits for the MQTT ingest worker."""

    client_id: str = "kizuna-ingest"
    shared_group: str | None = Field(
        default=None, description="MQTT 5 shared-subscription group; set to run several workers."
    )
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    # Per-device affinity without broker support: every worker subscribes to everything
    # (no shared group) and stores only devices with crc32(uid) % partition_count equal to
    # its partition_index, acknowledging the rest at once. See docs/ingest.md.
    partition_count: int = Field(default=1, ge=1, le=1024)
    partition_index: int = Field(default=0, ge=0)
    # Database writers in one process, devices split between them by uid hash (per-device
    # order kept): one writer's Python work overlaps another's database round trips.
    writer_lanes: int = Field(default=2, ge=1, le=16)
    batch_max_messages: int = Field(default=2000, ge=1)
    # How long a lane waits for a batch to fill after its first message. Under load batches
    # fill while the previous one commits, so this mostly sets idle latency; measured on 2
    # cores, publish -> commit p50/p99: 200 msgs/s 52/102 ms at 50, 20/36 ms at 10;
    # 5 000 msgs/s 185/505 ms at 20, 44/228 ms at 10 (docs/ingest.md). Fewer, larger
    # batches at low rates cost less CPU.
    batch_max_wait_ms: int = Field(default=10, ge=1)
    # MQTT 5 flow control: the broker sends at most this many unacked messages, which bounds
    # ingest's memory under a slow database (backpressure instead of an unbounded queue).
    # Ingest acks only after commit, so this window must cover throughput × (receive →
    # commit → ack) time: 10 000 held a 2-lane drain to 3 700 msgs/s, 30 000 let it reach
    # 5 700 (docs/ingest.md). ~2 KB of memory per message in flight.
    receive_maximum: int = Field(default=30_000, ge=1, le=65_535)
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

    @model_validator(mode="after")
    def _one_scale_out_mode(self) -> IngestConfig:
        if self.partition_index >= self.partition_count:
            raise ValueError("partition_index must be below partition_count")
        if self.partition_count > 1 and self.shared_group:
            raise ValueError("use either shared_group or partitions, not both")
        return self
