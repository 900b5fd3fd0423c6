"""Refrigerator: two compartments, a thermostat-driven compressor, doors opened around meals."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from simulator.behaviour.base import (
    Behaviour,
    BehaviourContext,
    EmittedEvent,
    MetricValues,
    day_off,
    local_hour,
    relax,
    time_within,
)

KITCHEN_C = 22.0
FRIDGE_LEAK_TAU_S = 4.0 * 3600  # how fast the closed fridge warms towards the kitchen
FREEZER_LEAK_TAU_S = 6.0 * 3600
DOOR_TAU_S = 600.0  # warming with the door open
FRIDGE_COOLING_C_PER_MIN = 0.25
FREEZER_COOLING_C_PER_MIN = 0.30
COMPRESSOR_W = 120.0
DEFROST_W = 180.0
DEFROST_HOUR = 3.0
DEFROST_MIN = 20.0


class Refrigerator(Behaviour):
    """A fridge-freezer in a household kitchen."""

    model_id = "refrigerator"
    faults = frozenset({"compressor_failure", "door_left_open"})

    def __init__(self, context: BehaviourContext, start: datetime) -> None:
        super().__init__(context, start)
        self.fridge_sp = 3.0
        self.freezer_sp = -18.0
        self.fridge = self.fridge_sp + float(self.rng.uniform(-0.5, 0.5))
        self.freezer = self.freezer_sp + float(self.rng.uniform(-1, 1))
        self.compressor = False
        self.duty = 30.0
        self.filter_hours = float(self.rng.uniform(100, 3500))
        self.door_open_s = 0.0
        self.defrost_left_s = 0.0
        self.quick_freeze_until: datetime | None = None

    def step(self, now: datetime, dt_s: float) -> list[EmittedEvent]:
        """Doors, thermostat and thermal drift for one step."""
        events = self._doors(now, dt_s)
        hour = local_hour(now)
        if DEFROST_HOUR <= hour < DEFROST_HOUR + dt_s / 3600 and self.defrost_left_s <= 0:
            self.defrost_left_s = DEFROST_MIN * 60
            events.append(EmittedEvent(time_within(now, dt_s, 0.0), "defrost_started"))
        self._thermostat(now)
        on = 1.0 if self.compressor else 0.0
        minutes = dt_s / 60
        open_share = min(1.0, self.door_open_s / dt_s)
        self.fridge = relax(self.fridge, KITCHEN_C, dt_s, FRIDGE_LEAK_TAU_S)
        self.fridge = relax(self.fridge, KITCHEN_C, dt_s * open_share, DOOR_TAU_S)
        damper_open = self.fridge > self.fridge_sp - 1  # the fridge damper shuts when cold
        self.fridge -= on * damper_open * FRIDGE_COOLING_C_PER_MIN * minutes
        self.freezer = relax(self.freezer, KITCHEN_C, dt_s, FREEZER_LEAK_TAU_S)
        self.freezer = relax(self.freezer, KITCHEN_C, dt_s * open_share * 0.3, DOOR_TAU_S)
        self.freezer -= on * FREEZER_COOLING_C_PER_MIN * minutes
        if self.defrost_left_s > 0:
            self.freezer += 0.05 * minutes
            self.defrost_left_s -= dt_s
        self.duty = relax(self.duty, on * 100, dt_s, 3600)
        self.filter_hours += dt_s / 3600
        return events

    def _thermostat(self, now: datetime) -> None:
        if "compressor_failure" in self.active_faults:
            self.compressor = False
            return
        boost = 3.0 if self.quick_freeze_until and now < self.quick_freeze_until else 0.0
        too_warm = self.fridge > self.fridge_sp + 1 or self.freezer > self.freezer_sp + 1.5 - boost
        cold_enough = (
            self.fridge < self.fridge_sp - 1 and self.freezer < self.freezer_sp - 1 - boost
        )
        if too_warm:
            self.compressor = True
        elif cold_enough:
            self.compressor = False

    def _doors(self, now: datetime, dt_s: float) -> list[EmittedEvent]:
        if "door_left_open" in self.active_faults:
            self.door_open_s = dt_s
            return []
        hour = local_hour(now)
        rate_per_h = 0.0
        if self.persona.awake(hour) and self.persona.at_home(day_off(now), hour):
            near_meal = any(abs(hour - meal) < 0.75 for meal in self.persona.meal_hours)
            rate_per_h = 6.0 if near_meal else 0.8
        count = int(self.rng.poisson(rate_per_h * dt_s / 3600))
        self.door_open_s = 0.0
        events: list[EmittedEvent] = []
        for i in range(count):
            seconds = float(self.rng.uniform(8, 45))
            self.door_open_s += seconds
            opened = (i + 0.1) / (count + 0.5)
            closed = opened + min(seconds / dt_s, 0.3 / (count + 0.5))
            events.append(EmittedEvent(time_within(now, dt_s, opened), "door_opened"))
            data: MetricValues = {"open_s": round(seconds, 1)}
            events.append(EmittedEvent(time_within(now, dt_s, closed), "door_closed", data))
        return events

    def raw_metrics(self) -> MetricValues:
        """A full snapshot of the fridge."""
        power = 4.0 + (COMPRESSOR_W if self.compressor else 0.0)
        if self.defrost_left_s > 0:
            power += DEFROST_W
        return {
            "fridge_temp_c": self.fridge + float(self.rng.normal(0, 0.05)),
            "freezer_temp_c": self.freezer + float(self.rng.normal(0, 0.05)),
            "fridge_setpoint_c": self.fridge_sp,
            "freezer_setpoint_c": self.freezer_sp,
            "door_open": "door_left_open" in self.active_faults,
            "compressor_on": self.compressor,
            "compressor_duty_pct": self.duty,
            "power_w": power + float(self.rng.normal(0, 1.5)),
            "filter_hours": self.filter_hours,
        }

    def command(self, name: str, args: dict[str, Any], now: datetime) -> str | None:
        """Set compartment temperatures, or freeze quickly for two hours."""
        if name == "set_fridge_temp":
            self.fridge_sp = float(args["temp_c"])
        elif name == "set_freezer_temp":
            self.freezer_sp = float(args["temp_c"])
        elif name == "quick_freeze":
            self.quick_freeze_until = now + timedelta(hours=2)
        else:
            return super().command(name, args, now)
        return None

    def desire(self, values: dict[str, Any]) -> None:
        """The platform may set both set points."""
        self.fridge_sp = float(values.get("fridge_setpoint_c", self.fridge_sp))
        self.freezer_sp = float(values.get("freezer_setpoint_c", self.freezer_sp))
