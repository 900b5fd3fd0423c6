"""Behaviour models: valid readings, reproducible lives, and physics that make sense."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from devices.catalog import builtin_models
from simulator.behaviour import BEHAVIOURS, BehaviourContext, make_behaviour
from simulator.behaviour.base import Behaviour, local_hour
from simulator.environment import TOKYO, is_day_off, japanese_holidays
from simulator.errors import UnknownModelError
from simulator.personas import PERSONAS

START = datetime(2026, 11, 15, 15, 0, tzinfo=UTC)  # Monday 00:00 in Tokyo
STEP = timedelta(minutes=1)


def _behaviour(model: str, persona: str = "commuter", seed: int = 5) -> Behaviour:
    context = BehaviourContext(f"{model}-1", PERSONAS[persona], seed, 35.6466, 139.6532)
    return make_behaviour(model, context, START)


def _live(behaviour: Behaviour, hours: float, every_min: int = 5):
    """Yield (time, metrics, events of the step) for `hours` of device time."""
    now = START
    for i in range(int(hours * 60)):
        now += STEP
        events = behaviour.step(now, 60.0)
        metrics = behaviour.metrics() if (i + 1) % every_min == 0 else None
        yield now, metrics, events


@pytest.mark.parametrize("persona", sorted(PERSONAS))
@pytest.mark.parametrize("model", sorted(BEHAVIOURS))
def test_every_reading_fits_its_product_model(model: str, persona: str) -> None:
    product = builtin_models()[model]
    behaviour = _behaviour(model, persona)
    readings = 0
    for _, metrics, events in _live(behaviour, 24 * 3):
        for event in events:
            assert event.name in product.events, event.name
        if metrics is None:
            continue
        readings += 1
        assert set(metrics) == set(product.metrics)
        assert product.check_metrics(metrics) == [], metrics
    assert readings == 3 * 24 * 12


@pytest.mark.parametrize("model", sorted(BEHAVIOURS))
def test_same_seed_lives_the_same_life_and_another_seed_does_not(model: str) -> None:
    def trace(seed: int) -> list[object]:
        return [
            (m, [(e.ts, e.name) for e in ev])
            for _, m, ev in _live(_behaviour(model, seed=seed), 36)
        ]

    assert trace(3) == trace(3)
    assert trace(3) != trace(4)


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="no behaviour for model 'toaster'"):
        _behaviour("toaster")


def test_commuter_car_drives_on_weekdays_and_charges_at_home_at_night() -> None:
    car = _behaviour("ev", "commuter")
    trips: list[datetime] = []
    charging_hours: set[int] = set()
    for now, metrics, events in _live(car, 24 * 7, every_min=2):
        trips += [e.ts for e in events if e.name == "trip_started"]
        if metrics is None:
            continue
        assert 35.4 < float(metrics["lat"]) < 35.9 and 139.4 < float(metrics["lon"]) < 140.0
        if metrics["charging"]:
            assert metrics["plugged_in"] is True
            charging_hours.add(int(local_hour(now)))
        if float(metrics["speed_kmh"]) > 0:
            assert metrics["plugged_in"] is False
    weekday_departures = [
        t for t in trips if not is_day_off(t.astimezone(TOKYO).date()) and 7 <= local_hour(t) < 9
    ]
    assert len(weekday_departures) == 5  # Monday to Friday, around 07:45
    assert charging_hours <= {23, 0, 1, 2, 3, 4, 5, 6}  # cheap night tariff only
    assert float(car.metrics()["soc_pct"]) > 60


def test_fridge_stays_cold_and_warms_past_8c_within_two_hours_of_compressor_failure() -> None:
    fridge = _behaviour("refrigerator", "family")
    temps = [float(m["fridge_temp_c"]) for _, m, _ in _live(fridge, 24) if m]
    assert min(temps) > 0.5 and max(temps) < 6.5
    fridge.set_fault("compressor_failure", {}, True)
    warm = [float(m["fridge_temp_c"]) for _, m, _ in _live(fridge, 2) if m]
    assert warm[-1] > 8.5
    assert all(m["compressor_on"] is False for _, m, _ in _live(fridge, 1) if m)


def test_fridge_doors_open_around_meals_when_someone_is_home() -> None:
    fridge = _behaviour("refrigerator", "commuter")
    opened = [e.ts for _, _, ev in _live(fridge, 24 * 5) for e in ev if e.name == "door_opened"]
    hours = [local_hour(t) for t in opened]
    assert len(hours) > 20
    assert not [h for h in hours if 9 <= h < 18]  # the commuter is at work on weekdays
    assert not [h for h in hours if h < 6.4 or h >= 23.5]  # and asleep at night


def test_washer_runs_a_full_cycle_on_laundry_days_and_reports_a_leak() -> None:
    washer = _behaviour("washing_machine", "family")  # laundry Monday to Saturday
    phases: list[str] = []
    for _, metrics, _ in _live(washer, 24, every_min=1):
        assert metrics is not None
        if not phases or phases[-1] != metrics["phase"]:
            phases.append(str(metrics["phase"]))
    assert phases == ["idle", "fill", "wash", "rinse", "spin", "done", "idle"]
    washer.set_fault("leak", {}, True)
    steps = list(_live(washer, 0.5))
    assert [e.name for _, _, ev in steps for e in ev].count("leak_detected") == 1
    last = next(m for _, m, _ in reversed(steps) if m)
    assert last["leak_detected"] is True and float(last["water_flow_lpm"]) > 0


def test_air_conditioner_heats_the_room_while_people_are_home_in_november() -> None:
    ac = _behaviour("air_conditioner", "retiree")
    samples = [(now, m) for now, m, _ in _live(ac, 24) if m]
    daytime = [m for now, m in samples if 10 <= local_hour(now) < 20]
    assert daytime and all(m["mode"] == "heat" for m in daytime)
    assert all(abs(float(m["room_temp_c"]) - 24.0) < 1.5 for m in daytime[6:])
    night = [m for now, m in samples if 1 <= local_hour(now) < 5]
    assert night and all(m["mode"] == "off" and float(m["power_w"]) < 1 for m in night)


def test_commands_and_desired_state_change_the_product() -> None:
    car = _behaviour("ev")
    assert car.command("set_charge_limit", {"limit_pct": 95}, START) is None
    assert car.metrics()["charge_limit_pct"] == 95
    car.desire({"charge_limit_pct": 70})
    assert car.metrics()["charge_limit_pct"] == 70
    assert car.command("unlock", {}, START) is None and car.metrics()["locked"] is False
    assert car.command("self_destruct", {}, START) == "command self_destruct is not supported"
    washer = _behaviour("washing_machine")
    assert washer.command("pause", {}, START) == "no cycle is running"


def test_japanese_calendar_knows_holidays_and_substitute_days() -> None:
    assert date(2026, 11, 23) in japanese_holidays(2026)  # Labour Thanksgiving Day
    assert date(2026, 1, 12) in japanese_holidays(2026)  # Coming of Age Day, 2nd Monday
    assert date(2026, 5, 6) in japanese_holidays(2026)  # Constitution Day fell on a Sunday
    assert is_day_off(date(2026, 11, 21)) and not is_day_off(date(2026, 11, 24))
