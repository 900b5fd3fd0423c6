"""Notification settings (part of the one Kizuna settings object)."""

from pydantic import BaseModel, ConfigDict, Field


class NotifyConfig(BaseModel):
    """Outbox worker and delivery-channel settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smtp_url: str | None = Field(default=None, description="smtp://user:pass@host:port")
    from_address: str = "friends@kizuna.local"
    poll_interval_s: float = Field(default=0.2, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    batch_size: int = Field(default=100, ge=1, le=5000)
    lease_s: float = Field(default=60, gt=0, description="A claimed row returns after this.")
    retry_base_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=900.0, gt=0)
    delivery_timeout_s: float = Field(default=10.0, gt=0)
    cooldown_s: float = Field(default=3600, ge=0, description="Per person, device and kind.")
    escalate_after_s: float = Field(default=900, gt=0)
    default_channels: tuple[str, ...] = ("feed", "mqtt")
    allow_private_webhooks: bool = Field(
        default=False, description="Let webhooks reach loopback/private addresses (tests only)."
    )
    delivery_workers: int = Field(default=2, ge=1, le=64)
