"""Device registry settings (part of the one Kizuna settings object)."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class DevicesConfig(BaseModel):
    """How device credentials are enforced in the broker, and registry behaviour."""

    broker_auth: Literal["none", "mosquitto-dynsec"] = "none"
    dynsec_admin_username: str = "kizuna-admin"
    dynsec_admin_password: str | None = None
    # Product model files added by an operator, on top of the shipped ones (same id wins here).
    extra_models_dir: Path | None = None
    # A device that said "online" but has not been heard from for this long counts as offline.
    offline_after_s: int = Field(default=900, ge=10)
    # How long the API waits for the broker to accept a command or desired-state message.
    publish_timeout_s: float = Field(default=5.0, gt=0)
