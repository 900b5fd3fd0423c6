"""Built-in rule packs: in step with the README contract, and each doing what it promises."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import Connection
from psycopg.rows import DictRow

from rules import service
from rules.packs import builtin_packs
from store.db import connect
from tests.conftest import create_database_from_template, drop_database
from tests.rules.conftest import (
    T0,
    Feeder,
    add_device,
    alerts,
    install_packs,
    minutes,
    moments,
    rows,
)

# The tests below use distinct devices, so they share one database with the packs installed.


@pytest.fixture(scope="module")
def pack_database(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    """One database for this module, with the built-in packs installed."""
    url = create_database_from_template(postgres_admin_url, template_database)
    try:
        with contextlib.closing(connect(url, autocommit=True)) as conn:
            install_packs(conn)
        yield url
    finally:
        drop_database(postgres_admin_url, url)


@pytest.fixture
def db(pack_database: str) -> Iterator[Connection[DictRow]]:
    """An autocommit connection to the module's database."""
    with contextlib.closing(connect(pack_database, autocommit=True)) as conn:
        yield conn


@pytest.fixture
def feeder(pack_database: str) -> Feeder:
    """Feeds batches into the module's database, with a clock of this test's own."""
    return Feeder(pack_database)


README = Path(__file__).resolve().parents[2] / "rules" / "README.md"
HOME = (35.0, 139.0)


def readme_contract() -> dict[str, tuple[str, set[str]]]:
    """kind → (severity, facts keys) from the README table."""
    contract = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"`[a-z_]+\.[a-z_]+`", cells[0]):
            facts = set() if cells[2] == "(none)" else set(re.findall(r"`([a-z_]+)`", cells[2]))
            facts -= {"front_left", "front_right", "rear_left", "rear_right"}
            contract[cells[0].strip("`")] = (cells[1], facts)
    return contract


def test_every_pack_moment_matches_the_readme_contract() -> None:
    contract = readme_contract()
    produced = {}
    for pack in builtin_packs().values():
        for spec in pack.rules:
            moment = spec.actions.moment
            assert moment is not None, spec.key
            produced[moment.kind] = (moment.severity, set(moment.facts) | set(moment.facts_from))
    assert produced == contract
    assert len(produced) == 14


def test_installing_packs_twice_changes_nothing(db: Connection[DictRow]) -> None:
    assert service.install_builtin_packs(db) == {"created": 0, "updated": 0, "unchanged": 17}


def test_fridge_door_left_open(db: Connection[DictRow], feeder: Feeder) -> None:
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, door_open=True, fridge_temp_c=4.5)
    feeder.send(fridge, T0 + minutes(1), door_open=True)
    feeder.send(fridge, T0 + minutes(2), door_open=True, fridge_temp_c=5.0)
    [moment] = moments(db, fridge)
    assert moment["kind"] == "refrigerator.door_left_open"
    assert moment["facts"] == {"open_min": 2, "fridge_temp_c": 5.0}
    assert moment["occurred_at"] == T0 + minutes(2)


def test_fridge_too_warm_for_30_minutes_fired_by_the_scheduler(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    fridge = add_device(db, "refrigerator")
    feeder.send(fridge, T0, fridge_temp_c=9.0)
    feeder.clock.advance(minutes=30)
    assert feeder.sweep() == 1
    [moment] = moments(db, fridge)
    assert (moment["kind"], moment["occurred_at"]) == ("refrigerator.too_warm", T0 + minutes(30))
    [notice] = rows(
        db, "SELECT message, severity FROM operator_notifications WHERE device_id = %s", fridge.id
    )
    assert notice == {"message": "Refrigerator above 8 °C for 30 minutes", "severity": "warning"}


def test_washer_leak_is_critical_tells_operators_and_pauses(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    washer = add_device(db, "washing_machine")
    feeder.send(washer, T0, leak_detected=False, water_flow_lpm=8.0)
    feeder.batch(feeder.event(washer, T0 + minutes(1), "leak_detected"))
    feeder.send(washer, T0 + minutes(2), leak_detected=True, water_flow_lpm=9.0)
    [moment] = moments(db, washer)
    assert (moment["kind"], moment["severity"], moment["facts"]) == (
        "washing_machine.leak",
        "critical",
        {"water_flow_lpm": 8.0},
    )
    [alert] = alerts(db, washer)
    assert (alert["severity"], alert["status"]) == ("critical", "active")
    [intent] = rows(
        db, "SELECT name, args FROM rule_command_intents WHERE device_id = %s", washer.id
    )
    assert intent == {"name": "pause", "args": {}}
    assert (
        len(rows(db, "SELECT id FROM operator_notifications WHERE device_id = %s", washer.id)) == 1
    )


def test_washer_cycle_finished_and_drum_cleaning(db: Connection[DictRow], feeder: Feeder) -> None:
    washer = add_device(db, "washing_machine")
    feeder.send(washer, T0, cycles_since_drum_clean=29)
    feeder.batch(feeder.event(washer, T0 + minutes(1), "cycle_finished"))
    feeder.send(washer, T0 + minutes(2), cycles_since_drum_clean=30)
    assert [(m["kind"], m["facts"]) for m in moments(db, washer)] == [
        ("washing_machine.cycle_finished", {}),
        ("washing_machine.drum_cleaning_due", {"cycles_since_drum_clean": 30}),
    ]


def test_ev_charge_complete_carries_the_latest_charge(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    car = add_device(db, "ev")
    feeder.send(car, T0, soc_pct=80.0, range_km=410.0, plugged_in=True)
    feeder.batch(feeder.event(car, T0 + minutes(1), "charge_complete"))
    [moment] = moments(db, car)
    assert (moment["kind"], moment["facts"]) == (
        "ev.charge_complete",
        {"soc_pct": 80.0, "range_km": 410.0},
    )


def test_ev_not_plugged_in_at_night_at_home(db: Connection[DictRow], feeder: Feeder) -> None:
    car = add_device(db, "ev", home=HOME, time_zone="Asia/Tokyo")
    # 18:00 in Tokyo, parked 50 m from home, unplugged, 80 % charged.
    feeder.send(car, T0, plugged_in=False, lat=35.00045, lon=139.0, soc_pct=80.0, range_km=400.0)
    feeder.clock.advance(hours=3)  # 21:00 Tokyo: the night window opens; the 30 min timer starts
    feeder.sweep()
    assert moments(db, car) == []
    feeder.clock.advance(minutes=30)
    feeder.sweep()
    [moment] = moments(db, car)
    assert moment["kind"] == "ev.not_plugged_in"
    assert moment["occurred_at"] == T0 + minutes(210)  # 21:30 Tokyo
    assert moment["facts"] == {"soc_pct": 80.0, "range_km": 400.0}


def test_ev_low_charge_the_evening_before_a_commute(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    car = add_device(db, "ev", time_zone="Asia/Tokyo")
    feeder.send(car, T0, soc_pct=40.0, range_km=180.0, plugged_in=False)  # Monday 18:00 Tokyo
    feeder.clock.advance(hours=2)
    feeder.sweep()
    [moment] = [m for m in moments(db, car) if m["kind"] == "ev.low_charge_before_commute"]
    assert moment["occurred_at"] == T0 + minutes(120)  # 20:00 Tokyo
    assert moment["facts"] == {"soc_pct": 40.0, "range_km": 180.0, "commute_time": "08:00"}


def test_ev_tire_pressure_dropping(db: Connection[DictRow], feeder: Feeder) -> None:
    car = add_device(db, "ev")
    feeder.send(car, T0, tire_fl_kpa=250.0, tire_fr_kpa=250.0)
    feeder.send(car, T0 + minutes(30), tire_fl_kpa=240.0, tire_fr_kpa=249.0)
    [moment] = moments(db, car)
    assert moment["facts"] == {"tire": "front_left", "pressure_kpa": 240.0, "rate_kpa_per_h": -20.0}


def test_ev_left_unlocked_and_battery_health(db: Connection[DictRow], feeder: Feeder) -> None:
    car = add_device(db, "ev")
    feeder.send(car, T0, locked=False, speed_kmh=0.0, battery_health_pct=86.0)
    feeder.send(car, T0 + minutes(10), locked=False, speed_kmh=0.0, battery_health_pct=84.9)
    assert sorted((m["kind"], m["facts"]) for m in moments(db, car)) == [
        ("ev.battery_health_decline", {"battery_health_pct": 84.9}),
        ("ev.left_unlocked", {"unlocked_min": 10}),
    ]


def test_air_conditioner_unusual_power_draw_and_filter(
    db: Connection[DictRow], feeder: Feeder
) -> None:
    unit = add_device(db, "air_conditioner")
    typical = [800.0, 810.0, 790.0, 805.0, 795.0] * 4  # median 800, MAD 5
    feeder.batch(
        *(
            feeder.reading(unit, T0 + minutes(i), mode="cool", power_w=w)
            for i, w in enumerate(typical)
        )
    )
    feeder.send(unit, T0 + minutes(20), power_w=830.0, filter_hours=500.0)  # z = 0.6745*30/5 = 4.05
    kinds = [(m["kind"], m["facts"]) for m in moments(db, unit)]
    assert kinds == [
        ("air_conditioner.filter_cleaning_due", {"filter_hours": 500.0}),
        ("air_conditioner.unusual_power_draw", {"power_w": 830.0, "typical_power_w": 800.0}),
    ]
