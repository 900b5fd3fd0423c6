"""A customer's health indicator: are their products working and are messages reaching them?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Health = Literal["good", "attention", "at_risk"]


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """What the indicator is computed from."""

    devices: int
    online: int
    critical_alerts: int
    warning_alerts: int
    failed_deliveries: int


def customer_health(inputs: HealthInputs) -> Health:
    """At risk: a critical alert, every product offline, or messages failing repeatedly."""
    all_offline = inputs.devices > 0 and inputs.online == 0
    if inputs.critical_alerts or all_offline or inputs.failed_deliveries >= 3:
        return "at_risk"
    if inputs.warning_alerts or inputs.online < inputs.devices or inputs.failed_deliveries:
        return "attention"
    return "good"
