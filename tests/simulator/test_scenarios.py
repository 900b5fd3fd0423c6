"""Scenario files: the built-in ones load, bad ones are refused clearly, starts are placed right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.catalog import builtin_models
from simulator.behaviour import BEHAVIOURS
from simulator.environment import TOKYO
from simulator.errors import ScenarioError
from simulator.models import SESSION_FAULTS
from simulator.scenarios import builtin_scenarios, load_scenario, scenario_start

NOW = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_builtin_scenario_is_consistent(name: str) -> None:
    scenario = load_scenario(name)
    models = {d.uid: d.model for d in scenario.devices}
    for fault in scenario.faults:
        assert fault.kind in SESSION_FAULTS | BEHAVIOURS[models[fault.device]].faults
    for expectation in scenario.expect:
        assert expectation.kind.split(".")[0] == models[expectation.device]
    assert all(d.model in builtin_models() for d in scenario.devices)
    assert scenario.expect, "a built-in scenario says what should be noticed"


def test_builtin_scenarios_cover_the_faults_the_platform_must_survive() -> None:
    kinds = {f.kind for name in builtin_scenarios() for f in load_scenario(name).faults}
    assert kinds >= {
        "leak",
        "compressor_failure",
        "slow_puncture",
        "unplugged_low_charge",
        "offline",
        "stuck_sensor",
        "clock_skew",
        "duplicate_burst",
        "malformed",
    }


def test_start_ends_the_run_before_now() -> None:
    scenario = load_scenario("fridge_compressor_failure")
    start = scenario_start(scenario, NOW)
    assert start + scenario.duration <= NOW - timedelta(minutes=5)
    local = start.astimezone(TOKYO)
    assert (local.hour, local.minute) == (0, 0)  # the same hours of the day on every run
    assert NOW - start < scenario.duration + timedelta(days=1)


def test_start_weekday_is_a_local_midnight_on_that_day() -> None:
    scenario = load_scenario("ev_unplugged_low_charge")
    start = scenario_start(scenario, NOW).astimezone(TOKYO)
    assert (start.weekday(), start.hour, start.minute) == (6, 0, 0)
    assert start + scenario.duration <= NOW


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_fault_for_a_device_not_in_the_scenario_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: bad\nduration: 1h\ndevices: [{uid: a, model: refrigerator}]\n"
        "faults: [{device: b, kind: offline, at: 10m}]\n",
    )
    with pytest.raises(ScenarioError, match="'b' is not one of the scenario's devices"):
        load_scenario(path)


def test_bad_duration_and_unknown_name_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: bad\nduration: soon\ndevices: [{uid: a, model: ev}]\n")
    with pytest.raises(ScenarioError, match="not a duration"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="built-in ones: "):
        load_scenario("no_such_scenario")
