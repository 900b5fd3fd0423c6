"""Air conditioner: keeps the room comfortable while people are home, wears its filter."""

from __future__ import annotations

from datetime import datetime
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
from simulator.environment import outdoor_temp_c

BUILDING_GAIN_C = 4.0  # a closed flat sits a little above the outdoor temperature
BUILDING_TAU_S = 3 * 3600.0
HVAC_TAU_S = 1200.0
BASE_W = 450.0
W_PER_DEGREE = 12.0
POWER_JITTER = 0.05  # inverter modulation: bounded, so a healthy unit never looks anomalous


class AirConditioner(Behaviour):
    """A room unit run by the household's comfort habits, or by the platform's desired state."""

    model_id = "air_conditioner"
    faults = frozenset({"power_surge"})

    def __init__(self, context: BehaviourContext, start: datetime) -> None:
        super().__init__(context, start)
        self.outdoor = outdoor_temp_c(start)
        self.room = self.outdoor + BUILDING_GAIN_C
        self.humidity = float(self.rng.uniform(40, 55))
        self.filter_hours = float(self.rng.uniform(0, 300))
        self.mode = "off"
        self.set_point = context.persona.comfort_heat_c
        self.desired_mode: str | None = None
        self.desired_set_point: float | None = None

    def step(self, now: datetime, dt_s: float) -> list[EmittedEvent]:
        """Decide the mode from habits, then move the room temperature for one step."""
        outdoor = self.outdoor = outdoor_temp_c(now)
        mode, set_point = self._wanted(now, outdoor)
        events: list[EmittedEvent] = []
        if mode != self.mode:
            at = time_within(now, dt_s, 0.0)
            events.append(EmittedEvent(at, "mode_changed", {"mode": mode, "previous": self.mode}))
        self.mode, self.set_point = mode, set_point
        self.room = relax(self.room, outdoor + BUILDING_GAIN_C, dt_s, BUILDING_TAU_S)
        if self.mode in ("heat", "cool"):
            self.room = relax(self.room, self.set_point, dt_s, HVAC_TAU_S)
        if self.mode != "off":
            self.filter_hours += dt_s / 3600
        dry = self.mode in ("cool", "dry")
        self.humidity = relax(self.humidity, 40.0 if dry else 55.0, dt_s, 3600)
        return events

    def _wanted(self, now: datetime, outdoor: float) -> tuple[str, float]:
        p = self.persona
        if self.desired_mode is not None:
            return self.desired_mode, self.desired_set_point or self.set_point
        hour = local_hour(now)
        present = p.awake(hour) and p.at_home(day_off(now), hour)
        if present and outdoor < p.heat_below_c:
            return "heat", self.desired_set_point or p.comfort_heat_c
        if present and outdoor > p.cool_above_c:
            return "cool", self.desired_set_point or p.comfort_cool_c
        return "off", self.set_point

    def _power(self, outdoor: float) -> float:
        if self.mode == "off":
            return 0.5
        if self.mode == "fan":
            return 35.0
        power = BASE_W + W_PER_DEGREE * abs(outdoor - self.set_point)
        surge = self.active_faults.get("power_surge")
        if surge:
            power *= float(surge.get("factor", 3.0))
        return power

    def raw_metrics(self) -> MetricValues:
        """A full snapshot of the unit (power relative to its own steady draw)."""
        power = self._power(self.outdoor)
        return {
            "room_temp_c": self.room + float(self.rng.normal(0, 0.1)),
            "humidity_pct": self.humidity,
            "outdoor_temp_c": self.outdoor,
            "set_point_c": self.set_point,
            "mode": self.mode,
            "power_w": power * (1 + float(self.rng.uniform(-POWER_JITTER, POWER_JITTER))),
            "filter_hours": self.filter_hours,
        }

    def command(self, name: str, args: dict[str, Any], now: datetime) -> str | None:
        """Change mode or set point (kept until changed again)."""
        if name == "set_mode":
            self.desired_mode = str(args["mode"])
        elif name == "set_point":
            self.desired_set_point = float(args["temp_c"])
        else:
            return super().command(name, args, now)
        return None

    def desire(self, values: dict[str, Any]) -> None:
        """Desired mode and set point override the household's habits."""
        if "mode" in values:
            self.desired_mode = str(values["mode"])
        if "set_point_c" in values:
            self.desired_set_point = float(values["set_point_c"])
