"""Database pool settings (part of the one Kizuna settings object)."""

from pydantic import BaseModel, Field


class StoreConfig(BaseModel):
    """Connection-pool sizing and statement limits."""

    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    # A database that vanishes without a FIN or RST (network blackhole, VM frozen) must
    # not hang a worker forever: the kernel probes an idle connection and gives up on
    # unacknowledged writes, and psycopg then raises OperationalError, which workers retry.
    tcp_keepalive_idle_s: int = Field(default=10, ge=1)
    tcp_keepalive_interval_s: int = Field(default=5, ge=1)
    tcp_keepalive_count: int = Field(default=3, ge=1)
    tcp_user_timeout_ms: int = Field(default=30_000, ge=0)
    partitions_ahead_days: int = Field(default=7, ge=1)
    partitions_behind_days: int = Field(default=35, ge=1)
