"""Rules settings (part of the one Kizuna settings object)."""

from pydantic import BaseModel, Field


class RulesConfig(BaseModel):
    """Timer scheduler cadence."""

    scheduler_interval_s: float = Field(default=1.0, gt=0)
