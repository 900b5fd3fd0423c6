"""Notification settings (part of the one Kizuna settings object)."""

from pydantic import BaseModel, Field


class NotifyConfig(BaseModel):
    """Outbox worker and delivery-channel settings."""

    smtp_url: str | None = None
    from_address: str = "friends@kizuna.local"
    poll_interval_s: float = Field(default=0.2, gt=0)
    max_attempts: int = Field(default=8, ge=1)
