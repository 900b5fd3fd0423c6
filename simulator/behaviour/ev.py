"""Electric vehicle: trips along Tokyo routes, night charging at home, tires, cabin, battery."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from simulator.behaviour.base import (
    Behaviour,
    BehaviourContext,
    EmittedEvent,
    MetricValues,
    crossed,
    day_off,
    local_hour,
    relax,
    time_within,
)
from simulator.environment import OUTING_AREAS, TOKYO, WORK_AREAS, distance_km, outdoor_temp_c

BATTERY_KWH = 60.0
KWH_PER_KM = 0.155
HOME_CHARGER_KW = 6.0
CITY_SPEED_KMH = 28.0
ROAD_FACTOR = 1.25  # roads are longer than the straight line
NIGHT_TARIFF = (23.0, 7.0)
TIRES = ("fl", "fr", "rl", "rr")


@dataclass
class Trip:
    """A drive along a polyline of (lat, lon) points."""

    points: list[tuple[float, float]]
    length_km: float
    to_home: bool
    done_km: float = 0.0

    def position(self) -> tuple[float, float]:
        """Where the car is after `done_km` along the route."""
        legs = [distance_km(*a, *b) for a, b in zip(self.points, self.points[1:], strict=False)]
        target = min(1.0, self.done_km / self.length_km) * sum(legs)
        for (a, b), leg in zip(zip(self.points, self.points[1:], strict=False), legs, strict=True):
            if target <= leg or leg == 0:
                f = target / leg if leg else 1.0
                return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f
            target -= leg
        return self.points[-1]


def route(start: tuple[float, float], end: tuple[float, float], bend: float) -> Trip:
    """A plausible road: a bent path through a midpoint offset sideways by `bend`."""
    mid_lat = (start[0] + end[0]) / 2 - (end[1] - start[1]) * bend
    mid_lon = (start[1] + end[1]) / 2 + (end[0] - start[0]) * bend
    points = [start, (mid_lat, mid_lon), end]
    length = ROAD_FACTOR * sum(distance_km(*a, *b) for a, b in itertools.pairwise(points))
    return Trip(points=points, length_km=max(length, 0.5), to_home=False)


class ElectricVehicle(Behaviour):
    """A car whose owner drives to work or errands and charges at home at night."""

    model_id = "ev"
    faults = frozenset({"slow_puncture", "unplugged_low_charge", "left_unlocked"})

    def __init__(self, context: BehaviourContext, start: datetime) -> None:
        super().__init__(context, start)
        rng = self.rng
        self.home = (context.home_lat, context.home_lon)
        self.work = WORK_AREAS[int(rng.integers(len(WORK_AREAS)))][1:]
        self.charge_limit = context.persona.charge_limit_pct
        self.soc = float(rng.uniform(self.charge_limit - 10, self.charge_limit))
        self.odometer = float(rng.uniform(3_000, 60_000))
        self.health = float(np.clip(rng.normal(95, 2), 88, 99.5))
        self.tire_base = {t: float(rng.normal(240, 3)) for t in TIRES}
        self.tire_loss = dict.fromkeys(TIRES, 0.0)
        self.tire_warm = 0.0
        self.position = self.home
        self.cabin = outdoor_temp_c(start)
        self.locked = True
        self.plugged = True
        self.charging = False
        self.charge_now = False
        self.speed = 0.0
        self.trip: Trip | None = None
        self.precondition_until: datetime | None = None
        self.precondition_c = 22.0

    def daily_plan(self, day: date, day_rng: np.random.Generator) -> dict[str, float]:
        """When the car leaves and comes back today (and where it goes)."""
        p = self.persona
        works = p.commutes or (p.name == "remote_worker" and day.weekday() == 2)
        plan: dict[str, float] = {"outing": float(day_rng.integers(len(OUTING_AREAS)))}
        plan["bend"] = float(day_rng.uniform(-0.2, 0.2))
        if works and not day_off(datetime(day.year, day.month, day.day, 12, tzinfo=TOKYO)):
            plan["out"] = p.leave_home_h + float(day_rng.normal(0, 0.15))
            plan["back"] = p.return_home_h + float(day_rng.normal(0, 0.2))
            plan["to_work"] = 1.0
        elif p.errand_h is not None and day_rng.random() < 0.8:
            plan["out"] = p.errand_h + float(day_rng.normal(0, 0.3))
            plan["back"] = plan["out"] + 1.5
        elif p.weekend_outing_h is not None and day_rng.random() < 0.7:
            plan["out"] = p.weekend_outing_h + float(day_rng.normal(0, 0.4))
            plan["back"] = min(plan["out"] + float(day_rng.uniform(2.5, 4.5)), 17.5)
        return plan

    def step(self, now: datetime, dt_s: float) -> list[EmittedEvent]:
        """Drive, charge and let tires and cabin follow the weather for one step."""
        events: list[EmittedEvent] = []
        plan = self.plan(now)
        if self.trip is None and crossed(plan.get("out"), now, dt_s):
            events += self._depart(now, dt_s, plan, to_home=False)
        elif self.trip is None and crossed(plan.get("back"), now, dt_s) and not self._at_home():
            events += self._depart(now, dt_s, plan, to_home=True)
        if self.trip is not None:
            events += self._drive(now, dt_s)
        else:
            self.speed = 0.0
        events += self._charge(now, dt_s)
        self._tires_and_cabin(now, dt_s)
        return events

    def _at_home(self) -> bool:
        return distance_km(*self.position, *self.home) < 0.15

    def _depart(
        self, now: datetime, dt_s: float, plan: dict[str, float], to_home: bool
    ) -> list[EmittedEvent]:
        if to_home:
            end = self.home
        elif plan.get("to_work"):
            end = self.work
        else:
            end = OUTING_AREAS[int(plan["outing"])][1:]
        self.trip = route(self.position, end, plan["bend"])
        self.trip.to_home = to_home
        was_charging = self.charging
        self.plugged = self.charging = self.charge_now = False
        at = time_within(now, dt_s, 0.1)
        events = [EmittedEvent(at, "unlocked"), EmittedEvent(at, "trip_started")]
        if was_charging:
            events.insert(0, EmittedEvent(at, "charge_complete", {"soc_pct": round(self.soc, 1)}))
        return events

    def _drive(self, now: datetime, dt_s: float) -> list[EmittedEvent]:
        assert self.trip is not None
        moving = self.rng.random() > 0.2  # traffic lights and jams
        self.speed = max(0.0, float(self.rng.normal(CITY_SPEED_KMH * 1.25, 9))) if moving else 0.0
        km = min(self.speed * dt_s / 3600, self.trip.length_km - self.trip.done_km)
        self.trip.done_km += km
        self.odometer += km
        self.soc = max(0.0, self.soc - km * KWH_PER_KM / BATTERY_KWH * 100)
        self.health = max(0.0, self.health - km * 2e-5)
        self.position = self.trip.position()
        if self.trip.done_km < self.trip.length_km - 1e-9:
            return []
        arrived_home = self.trip.to_home
        self.trip, self.speed = None, 0.0
        at = time_within(now, dt_s, 0.9)
        events = [
            EmittedEvent(at, "trip_ended", {"odometer_km": round(self.odometer, 1)}),
            EmittedEvent(at, "locked"),
        ]
        if arrived_home:
            self.position = self.home
            self.plugged = "unplugged_low_charge" not in self.active_faults
        return events

    def _charge(self, now: datetime, dt_s: float) -> list[EmittedEvent]:
        hour = local_hour(now)
        cheap = hour >= NIGHT_TARIFF[0] or hour < NIGHT_TARIFF[1]
        wants = self.plugged and self.soc < self.charge_limit - 0.5
        should = wants and (cheap or self.soc < 20 or self.charge_now)
        events: list[EmittedEvent] = []
        if should and not self.charging:
            self.charging = True
            events.append(EmittedEvent(time_within(now, dt_s, 0.0), "charge_started"))
        if not self.charging:
            return events
        taper = 1.0 if self.soc < 90 else 0.5
        self.soc = min(float(self.charge_limit), self.soc + self._power() * taper * dt_s / 36 / 60)
        if self.soc >= self.charge_limit - 0.5 or not self.plugged:
            self.charging = self.charge_now = False
            data: MetricValues = {"soc_pct": round(self.soc, 1)}
            events.append(EmittedEvent(time_within(now, dt_s, 1.0), "charge_complete", data))
        return events

    def _power(self) -> float:
        return HOME_CHARGER_KW * 0.92 if self.charging else 0.0

    def _tires_and_cabin(self, now: datetime, dt_s: float) -> None:
        puncture = self.active_faults.get("slow_puncture")
        if puncture:
            tire = str(puncture.get("tire", "rl"))
            self.tire_loss[tire] += float(puncture.get("rate_kpa_per_h", 20)) * dt_s / 3600
        warm_target = 5.0 if self.trip else 0.0
        self.tire_warm = relax(self.tire_warm, warm_target, dt_s, 1200 if self.trip else 2400)
        outdoor = outdoor_temp_c(now)
        if self.trip or (self.precondition_until and now < self.precondition_until):
            target, tau = (22.0 if self.trip else self.precondition_c), 400.0
        else:
            hour = local_hour(now)
            solar = 9.0 * max(0.0, math.sin(math.pi * (hour - 7) / 10)) if 7 < hour < 17 else 0
            target, tau = outdoor + solar, 2400.0
        self.cabin = relax(self.cabin, target, dt_s, tau)

    def raw_metrics(self) -> MetricValues:
        """A full snapshot of the car."""
        values: MetricValues = {
            "soc_pct": self.soc,
            "range_km": self.soc / 100 * BATTERY_KWH * self.health / 100 / KWH_PER_KM,
            "plugged_in": self.plugged,
            "charging": self.charging,
            "charge_power_kw": self._power()
            + (float(self.rng.normal(0, 0.05)) if self.charging else 0),
            "charge_limit_pct": self.charge_limit,
            "speed_kmh": self.speed,
            "odometer_km": self.odometer,
            "lat": round(self.position[0], 6),
            "lon": round(self.position[1], 6),
            "cabin_temp_c": self.cabin,
            "locked": self.locked and "left_unlocked" not in self.active_faults,
            "battery_health_pct": self.health,
        }
        for tire in TIRES:
            pressure = self.tire_base[tire] + self.tire_warm - self.tire_loss[tire]
            values[f"tire_{tire}_kpa"] = pressure + float(self.rng.normal(0, 0.4))
        return values

    def command(self, name: str, args: dict[str, Any], now: datetime) -> str | None:
        """Lock, unlock, charge and precondition as a real car would."""
        if name in ("lock", "unlock"):
            self.locked = name == "lock"
        elif name == "start_charging":
            if not self.plugged:
                return "not plugged in"
            self.charge_now = True
        elif name == "stop_charging":
            self.charge_now = False
            self.charging = False
        elif name == "set_charge_limit":
            self.charge_limit = int(args["limit_pct"])
        elif name == "precondition_cabin":
            self.precondition_c = float(args["temp_c"])
            self.precondition_until = now + timedelta(minutes=30)
        else:
            return super().command(name, args, now)
        return None

    def desire(self, values: dict[str, Any]) -> None:
        """The platform may set the charge limit."""
        if "charge_limit_pct" in values:
            self.charge_limit = int(values["charge_limit_pct"])

    def set_fault(self, kind: str, params: dict[str, Any], active: bool) -> None:
        """Slow puncture, forgetting to plug in with a low battery, leaving the car unlocked."""
        super().set_fault(kind, params, active)
        if kind == "unplugged_low_charge" and active:
            self.soc = float(params.get("soc_pct", 30))
            self.plugged = self.charging = self.charge_now = False
        if kind == "slow_puncture" and not active:
            self.tire_loss = dict.fromkeys(TIRES, 0.0)  # repaired
