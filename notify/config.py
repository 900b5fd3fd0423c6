"""Notification settings (part of the one Kizuna settings object)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from notify.signing import SignatureError, sign


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
    operator_emails: tuple[str, ...] = Field(
        default=(), description='Operators notified by rules, e.g. ["ops@example.com"].'
    )
    operator_webhook_url: str | None = Field(
        default=None, description="A webhook for operator notices (alerting, chat relay)."
    )
    operator_webhook_secret: SecretStr | None = Field(
        default=None, description="whsec_ + base64: signs operator webhook calls."
    )
    operator_language: Literal["en", "ja"] = "en"

    @field_validator("operator_emails")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            local, _, domain = address.partition("@")
            if not local or "." not in domain or any(c.isspace() for c in address):
                raise ValueError(f"not an email address: {address!r}")
        return value

    @model_validator(mode="after")
    def _signed_operator_webhook(self) -> "NotifyConfig":
        if self.operator_webhook_url is None:
            return self
        if not self.operator_webhook_url.startswith(("http://", "https://")):
            raise ValueError("operator_webhook_url must be http(s)://...")
        if self.operator_webhook_secret is None:
            raise ValueError("operator_webhook_url needs operator_webhook_secret (whsec_...)")
        try:
            sign(self.operator_webhook_secret.get_secret_value(), "check", 0, b"")
        except SignatureError as exc:
            raise ValueError("operator_webhook_secret must be whsec_ followed by base64") from exc
        return self
