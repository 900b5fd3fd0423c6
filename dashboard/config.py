"""Dashboard settings (part of the one Kizuna settings object)."""

from pydantic import BaseModel, Field


class DashboardConfig(BaseModel):
    """Where the Dash app listens, how often pages refresh and when a device counts as online."""

    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=0, le=65535)
    refresh_interval_ms: int = Field(default=2000, ge=250)
    online_window_s: int = Field(default=300, ge=10)
    map_max_points: int = Field(default=3000, ge=100)
