"""Device registry settings (part of the one Kizuna settings object)."""

from typing import Literal

from pydantic import BaseModel


class DevicesConfig(BaseModel):
    """How device credentials are enforced in the broker."""

    broker_auth: Literal["none", "mosquitto-dynsec"] = "none"
    dynsec_admin_username: str = "kizuna-admin"
    dynsec_admin_password: str | None = None
