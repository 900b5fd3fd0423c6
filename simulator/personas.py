"""Owner personas: the daily-life patterns (commutes, meals, laundry, comfort) devices follow."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from simulator.errors import SimulatorError


@dataclass(frozen=True)
class Persona:
    """How one household lives; hours are local (Asia/Tokyo) and jittered a little per day."""

    name: str
    description: str
    commutes: bool  # drives to work on working days
    leave_home_h: float
    return_home_h: float
    weekend_outing_h: float | None  # departure of a weekend trip, None when they stay in
    errand_h: float | None  # a short daily drive (shopping) for people at home in the day
    meal_hours: tuple[float, ...]
    home_during_day: bool
    laundry_weekdays: tuple[int, ...]  # Monday = 0
    laundry_h: float
    comfort_heat_c: float
    comfort_cool_c: float
    charge_limit_pct: int
    heat_below_c: float = 16.0  # outdoor temperature under which they heat
    cool_above_c: float = 24.0
    always_awake: bool = False  # someone needs comfort around the clock

    def at_home(self, day_off: bool, hour: float) -> bool:
        """Whether somebody is home at this local hour (drives appliance use)."""
        if self.home_during_day or day_off or not self.commutes:
            return True
        return not (self.leave_home_h <= hour < self.return_home_h + 0.5)

    def awake(self, hour: float) -> bool:
        """Whether the household is up (06:30-23:30) or needs care around the clock."""
        return self.always_awake or 6.5 <= hour < 23.5

    def does_laundry(self, day: date) -> bool:
        """Whether this is a laundry day."""
        return day.weekday() in self.laundry_weekdays


PERSONAS: dict[str, Persona] = {
    p.name: p
    for p in (
        Persona(
            name="commuter",
            description="Office worker driving to central Tokyo on weekdays",
            commutes=True,
            leave_home_h=7.75,
            return_home_h=18.25,
            weekend_outing_h=11.0,
            errand_h=None,
            meal_hours=(7.0, 19.5),
            home_during_day=False,
            laundry_weekdays=(5, 6),
            laundry_h=9.5,
            comfort_heat_c=22.0,
            comfort_cool_c=26.0,
            charge_limit_pct=80,
        ),
        Persona(
            name="family",
            description="Parents with children: school run, three meals, laundry most days",
            commutes=True,
            leave_home_h=8.25,
            return_home_h=17.5,
            weekend_outing_h=10.5,
            errand_h=None,
            meal_hours=(6.75, 12.0, 18.75),
            home_during_day=True,
            laundry_weekdays=(0, 1, 2, 3, 4, 5),
            laundry_h=8.75,
            comfort_heat_c=23.0,
            comfort_cool_c=25.5,
            charge_limit_pct=90,
        ),
        Persona(
            name="retiree",
            description="Retired couple at home, a short drive for errands most mornings",
            commutes=False,
            leave_home_h=10.0,
            return_home_h=11.5,
            weekend_outing_h=None,
            errand_h=10.0,
            meal_hours=(7.5, 12.0, 18.0),
            home_during_day=True,
            laundry_weekdays=(0, 3),
            laundry_h=9.0,
            comfort_heat_c=24.0,
            comfort_cool_c=26.5,
            charge_limit_pct=80,
        ),
        Persona(
            name="remote_worker",
            description="Works from home, drives to the office on Wednesdays only",
            commutes=False,
            leave_home_h=9.0,
            return_home_h=17.0,
            weekend_outing_h=13.0,
            errand_h=None,
            meal_hours=(8.0, 12.5, 19.0),
            home_during_day=True,
            laundry_weekdays=(2, 6),
            laundry_h=10.0,
            comfort_heat_c=21.5,
            comfort_cool_c=26.0,
            charge_limit_pct=80,
        ),
        Persona(
            name="care_home",
            description="An elderly person's room kept warm day and night",
            commutes=False,
            leave_home_h=10.0,
            return_home_h=11.0,
            weekend_outing_h=None,
            errand_h=None,
            meal_hours=(7.5, 12.0, 17.5),
            home_during_day=True,
            laundry_weekdays=(1, 4),
            laundry_h=9.5,
            comfort_heat_c=24.0,
            comfort_cool_c=26.0,
            charge_limit_pct=80,
            heat_below_c=22.0,
            cool_above_c=22.0,  # heating or cooling, never off, in every season
            always_awake=True,
        ),
    )
}


def persona(name: str) -> Persona:
    """A persona by name, or a clear error."""
    try:
        return PERSONAS[name]
    except KeyError:
        raise SimulatorError(
            f"unknown persona {name!r}; choose from {', '.join(PERSONAS)}"
        ) from None
