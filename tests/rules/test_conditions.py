"""Each condition type against hand-computed expectations (pure evaluation, no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rules.conditions import Input, haversine_m
from rules.engine import DeviceInfo, RuleState, compile_rule, evaluate, fresh_state
from rules.models import parse_rule_spec

EV = DeviceInfo(1, "ev")
BASE = datetime(2026, 3, 2, 0, 0, tzinfo=UTC).timestamp()  # Monday 00:00 UTC


def rule(when: Any, **actions: Any) -> Any:
    spec = {"key": "t.rule", "name": "t", "scope": {"model": "ev"}, "when": when}
    spec["actions"] = actions or {"alert": {}}
    return compile_rule(1, 1, parse_rule_spec(spec))


class Runner:
    """Feeds inputs to one rule for one device and records what happens."""

    def __init__(self, when: Any, device: DeviceInfo = EV, **actions: Any) -> None:
        self.rule = rule(when, **actions)
        self.device = device
        self.state: RuleState = fresh_state(self.rule, device.id)
        self.edges: list[tuple[str, float]] = []

    def read(self, minute: float, **metrics: Any) -> bool:
        return self._go(Input("reading", BASE + minute * 60, metrics))

    def event(self, minute: float, name: str, **data: Any) -> bool:
        return self._go(Input("event", BASE + minute * 60, {}, name, data))

    def tick(self, minute: float) -> bool:
        return self._go(Input("tick", BASE + minute * 60))

    def _go(self, inp: Input) -> bool:
        edge = evaluate(self.rule, self.state, inp, self.device)
        if edge is not None:
            self.edges.append((edge.kind, (edge.ts - BASE) / 60))
        return self.state.holding

    @property
    def due_minute(self) -> float | None:
        due = self.state.due_at
        return None if due is None else (due - BASE) / 60


def test_threshold_with_hysteresis_triggers_above_and_clears_only_below_clear_level() -> None:
    r = Runner({"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}})
    # value:      5      8 (not >8)  8.1    7 (between)  6 (not <6)  5.9
    assert [
        r.read(0, fridge_temp_c=5),
        r.read(1, fridge_temp_c=8),
        r.read(2, fridge_temp_c=8.1),
    ] == [
        False,
        False,
        True,
    ]
    assert [
        r.read(3, fridge_temp_c=7),
        r.read(4, fridge_temp_c=6),
        r.read(5, fridge_temp_c=5.9),
    ] == [
        True,
        True,
        False,
    ]
    assert r.edges == [("trigger", 2), ("clear", 5)]


def test_threshold_below_direction_and_missing_values_keep_last_known() -> None:
    r = Runner({"threshold": {"metric": "soc_pct", "below": 20, "clear_above": 25}})
    assert r.read(0, soc_pct=19.5) is True
    assert r.read(1, speed_kmh=30) is True  # soc not in this reading: the last known 19.5 stands
    assert r.read(2, soc_pct=24) is True
    assert r.read(3, soc_pct=25.5) is False


def test_unknown_values_never_raise_and_do_not_hold() -> None:
    r = Runner({"threshold": {"metric": "soc_pct", "above": 50}})
    assert r.read(0, speed_kmh=1) is False  # never reported
    assert r.read(1, soc_pct="lots") is False  # wrong type
    assert r.read(2, soc_pct=float("nan")) is False
    assert r.read(3, soc_pct=True) is False  # a boolean is not a number
    assert r.edges == []


def test_state_equals_not_equals_and_one_of_do_not_confuse_booleans_with_numbers() -> None:
    r = Runner({"state": {"metric": "plugged_in", "equals": False}})
    assert r.read(0, plugged_in=0) is False  # 0 is not False
    assert r.read(1, plugged_in=False) is True
    r = Runner({"state": {"metric": "mode", "not_equals": "off"}})
    assert r.read(0, mode="off") is False
    assert r.read(1, mode="cool") is True
    r = Runner({"state": {"metric": "phase", "one_of": ["rinse", "spin"]}})
    assert [r.read(0, phase="wash"), r.read(1, phase="spin")] == [False, True]


def test_duration_holds_only_after_the_inner_condition_held_continuously_for_the_time() -> None:
    r = Runner(
        {
            "duration": {
                "for": "10m",
                "condition": {"state": {"metric": "door_open", "equals": True}},
            }
        }
    )
    assert r.read(0, door_open=True) is False
    assert r.due_minute == 10  # durable timer: since 0 + 10 minutes
    assert r.read(4, door_open=False) is False  # interrupted: the timer is cancelled
    assert r.due_minute is None
    assert r.read(5, door_open=True) is False
    assert r.due_minute == 15
    assert r.read(14.9, door_open=True) is False
    assert r.tick(15) is True  # the timer fires without new data
    assert r.read(16, door_open=True) is True
    assert r.read(17, door_open=False) is False
    assert r.edges == [("trigger", 15), ("clear", 17)]


def test_absence_from_last_reading_never_moves_back_for_late_data() -> None:
    r = Runner({"absence": {"after": "15m"}})
    assert r.read(0, soc_pct=50) is False
    assert r.due_minute == 15
    assert r.read(10, soc_pct=51) is False
    assert r.due_minute == 25
    assert r.read(5, soc_pct=52) is False  # late reading (device time 5 < 10): due stays 25
    assert r.due_minute == 25
    assert r.tick(25) is True
    assert r.due_minute is None
    assert r.read(30, soc_pct=53) is False  # data again: the absence ends
    assert r.edges == [("trigger", 25), ("clear", 30)]


def test_absence_of_one_metric_ignores_other_metrics() -> None:
    r = Runner({"absence": {"after": "1h", "metric": "lat"}})
    r.read(0, lat=35.0, lon=139.0)
    r.read(50, soc_pct=40)
    assert r.due_minute == 60
    assert r.tick(60) is True


def test_rate_of_change_over_the_window() -> None:
    r = Runner({"rate": {"metric": "tire_fl_kpa", "window": "1h", "per": "1h", "below": -10}})
    assert r.read(0, tire_fl_kpa=250) is False  # one sample: unknown
    assert r.read(20, tire_fl_kpa=248) is False  # span 20 min < min_span 30 min: unknown
    # span 30 min, 250 → 244: -6 kPa per 0.5 h = -12 kPa/h
    assert r.read(30, tire_fl_kpa=244) is True
    # at 80 min the window (1 h) keeps samples from 20 min on: 248 → 240 over 60 min = -8 kPa/h
    assert r.read(80, tire_fl_kpa=240) is False
    assert r.edges == [("trigger", 30), ("clear", 80)]


def test_rate_fact_reaches_the_moment() -> None:
    r = Runner(
        {"rate": {"metric": "tire_fl_kpa", "window": "1h", "below": -10}},
        moment={"kind": "ev.tire_pressure_dropping", "facts_from": {"rate_kpa_per_h": "rate"}},
    )
    r.read(0, tire_fl_kpa=250)
    edge = evaluate(r.rule, r.state, Input("reading", BASE + 1800, {"tire_fl_kpa": 244}), EV)
    assert edge is not None and edge.facts == {"rate_kpa_per_h": -12.0}


def test_geofence_circle_enter_and_leave() -> None:
    # Tokyo station; 0.001° of latitude is about 111 m
    r = Runner({"geofence": {"circle": {"lat": 35.681, "lon": 139.767, "radius_m": 200}}})
    assert r.read(0, lat=35.690, lon=139.767) is False  # ~1000 m north
    assert r.read(1, lat=35.6825, lon=139.767) is True  # ~167 m: inside (enter)
    assert r.read(2, lat=35.683, lon=139.767) is False  # ~222 m: outside (leave)
    assert r.edges == [("trigger", 1), ("clear", 2)]
    assert haversine_m(35.681, 139.767, 35.683, 139.767) == pytest.approx(222.4, abs=0.5)


def test_geofence_polygon_and_outside() -> None:
    square = [[35.0, 139.0], [35.0, 139.1], [35.1, 139.1], [35.1, 139.0]]
    r = Runner({"geofence": {"polygon": square, "when": "outside"}})
    assert r.read(0, lat=35.05, lon=139.05) is False  # inside the square
    assert r.read(1, lat=35.05, lon=139.15) is True  # east of it
    assert r.read(2, lat=35.15, lon=139.05) is True  # north of it
    assert r.read(3, lat=35.01, lon=139.09) is False


def test_geofence_home_uses_the_registered_location_and_unknown_home_never_holds() -> None:
    at_home = DeviceInfo(1, "ev", home=(35.0, 139.0))
    r = Runner({"geofence": {"home": {"radius_m": 150}}}, device=at_home)
    assert r.read(0, lat=35.001, lon=139.0) is True  # ~111 m
    assert r.read(1, lat=35.002, lon=139.0) is False  # ~222 m
    r = Runner({"geofence": {"home": {"radius_m": 150}}})
    assert r.read(0, lat=35.0, lon=139.0) is False


def test_anomaly_robust_z_score_against_own_history() -> None:
    when = {"anomaly": {"metric": "power_w", "z": 4, "history": 5, "min_history": 5}}
    r = Runner(when, moment={"kind": "a.b", "facts_from": {"typical": "median", "now": "power_w"}})
    for minute, watts in enumerate([10, 11, 12, 13, 14]):
        assert r.read(minute, power_w=watts) is False  # history still too short
    # median 12, MAD = median(|-2,-1,0,1,2|) = 1 → z(17) = 0.6745 * 5 = 3.37: not anomalous
    assert r.read(5, power_w=17) is False
    # history now [11,12,13,14,17]: median 13, MAD = median(2,1,0,1,4) = 1 → z(20) = 4.72
    edge = evaluate(r.rule, r.state, Input("reading", BASE + 360, {"power_w": 20}), EV)
    assert edge is not None and edge.facts == {"typical": 13.0, "now": 20}
    assert r.state.state["n"]["c"]["z"] == pytest.approx(0.6745 * 7)


def test_anomaly_ignores_idle_values_so_switching_on_is_not_an_anomaly() -> None:
    when = {"anomaly": {"metric": "power_w", "history": 5, "min_history": 5, "learn_above": 50}}
    r = Runner(when)
    for minute, watts in enumerate([600, 610, 620, 630, 640]):
        r.read(minute, power_w=watts)
    for minute in range(5, 60):
        assert r.read(minute, power_w=0) is False  # off all night: not judged, not learned
    # history is still [600..640]: median 620, MAD 10 → z(625) = 0.34, a normal start
    assert r.read(60, power_w=625) is False
    assert r.state.state["n"]["c"]["h"] == [610, 620, 630, 640, 625]
    # z(1000) = 0.6745 * (1000 - 625) / 10 = 25.3: a real surge still fires
    assert r.read(61, power_w=1000) is True


def test_anomaly_with_flat_history_is_unknown_not_infinite() -> None:
    r = Runner({"anomaly": {"metric": "power_w", "history": 5, "min_history": 5}})
    for minute in range(5):
        r.read(minute, power_w=100)
    assert r.read(5, power_w=500) is False


def test_event_match_is_a_pulse_and_checks_data() -> None:
    r = Runner({"event": {"name": "mode_changed", "data": {"to": "heat"}}})
    assert r.event(0, "mode_changed", to="cool") is False
    assert r.event(1, "mode_changed", to="heat") is True
    assert r.read(2, power_w=1) is False
    assert r.event(3, "filter_cleaned") is False
    assert r.event(4, "mode_changed", to="heat") is True
    assert r.edges == [("trigger", 1), ("clear", 2), ("trigger", 4)]


def test_late_events_still_fire_event_only_rules() -> None:
    r = Runner({"event": {"name": "charge_complete"}})
    r.read(10, soc_pct=80)
    assert r.event(5, "charge_complete") is True  # 5 min earlier than the last reading


def test_late_readings_do_not_drive_stateful_rules() -> None:
    r = Runner({"threshold": {"metric": "soc_pct", "below": 20}})
    r.read(10, soc_pct=50)
    assert r.read(5, soc_pct=10) is False  # older than what the rule decided on
    assert r.edges == []


def test_window_in_the_owners_time_zone_crossing_midnight() -> None:
    tokyo = DeviceInfo(1, "ev", zone=ZoneInfo("Asia/Tokyo"))
    r = Runner({"window": {"start": "21:00", "end": "05:00", "days": ["mon"]}}, device=tokyo)
    # BASE is Monday 00:00 UTC = Monday 09:00 Tokyo
    assert r.tick(0) is False
    assert r.due_minute == 12 * 60  # next boundary: Monday 21:00 Tokyo = 12:00 UTC
    assert r.tick(12 * 60) is True
    assert r.tick(19 * 60 + 59) is True  # Tuesday 04:59 Tokyo (window started Monday)
    assert r.tick(20 * 60) is False  # 05:00 Tokyo
    assert r.tick(36 * 60) is False  # Tuesday 21:00 Tokyo: Tuesday is not in days


def test_window_uses_its_own_time_zone_when_given() -> None:
    r = Runner({"window": {"start": "09:00", "end": "17:00", "time_zone": "Europe/London"}})
    assert r.tick(8 * 60 + 59) is False
    assert r.tick(9 * 60) is True  # London is UTC in March (before the clock change)


def test_all_any_not_combinations() -> None:
    when = {
        "all": [
            {"state": {"metric": "locked", "equals": False}},
            {
                "any": [
                    {"threshold": {"metric": "speed_kmh", "below": 1}},
                    {"not": {"state": {"metric": "charging", "equals": False}}},
                ]
            },
        ]
    }
    r = Runner(when)
    assert r.read(0, locked=False, speed_kmh=50, charging=False) is False
    assert r.read(1, speed_kmh=0) is True
    assert r.read(2, speed_kmh=40, charging=True) is True
    assert r.read(3, locked=True) is False


def test_all_drops_timers_that_cannot_change_the_outcome() -> None:
    tokyo = DeviceInfo(1, "ev", zone=ZoneInfo("Asia/Tokyo"))
    when = {
        "all": [
            {"window": {"start": "20:00", "end": "23:00"}},
            {"threshold": {"metric": "soc_pct", "below": 50}},
        ]
    }
    r = Runner(when, device=tokyo)
    r.read(0, soc_pct=80)
    assert r.due_minute is None  # the charge is fine: waking at 20:00 would change nothing
    r.read(1, soc_pct=30)
    assert r.due_minute == 11 * 60  # 20:00 Tokyo
    assert r.tick(11 * 60) is True


def test_window_across_a_daylight_saving_jump_never_raises() -> None:
    new_york = DeviceInfo(1, "ev", zone=ZoneInfo("America/New_York"))
    r = Runner({"window": {"start": "01:30", "end": "02:30"}}, device=new_york)
    # 2026-03-08: clocks jump from 02:00 EST to 03:00 EDT, so 02:30 does not exist that night.
    day = datetime(2026, 3, 8, tzinfo=UTC).timestamp()
    assert r._go(Input("tick", day + 6.75 * 3600)) is True  # 01:45 EST
    assert r._go(Input("tick", day + 7.25 * 3600)) is False  # 03:15 EDT
    assert r.state.due_at is not None and r.state.due_at > day + 7.25 * 3600
