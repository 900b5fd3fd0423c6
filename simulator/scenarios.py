"""Scenario files: finding, loading and placing them in time."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from simulator.clock import floor_to
from simulator.environment import TOKYO
from simulator.errors import ScenarioError
from simulator.models import Scenario

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SAFETY_MARGIN = timedelta(minutes=5)  # device time stays this far behind the real now


def builtin_scenarios() -> dict[str, Path]:
    """The scenarios shipped in simulator/scenarios/, by name."""
    folder = Path(str(resources.files("simulator"))) / "scenarios"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    path = builtin_scenarios().get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        known = ", ".join(builtin_scenarios())
        raise ScenarioError(f"no scenario {str(name_or_path)!r}; built-in ones: {known}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Scenario.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ScenarioError(f"{path.name}: {exc}") from exc


def scenario_start(scenario: Scenario, now: datetime) -> datetime:
    """Where the run starts in device time, so that it ends before the real `now`.

    The start is the latest local midnight (Asia/Tokyo) that leaves room for the whole run
    (on `start_weekday` when given), so "at: 1d19h" is 19:00 on the second day and a run
    lives the same hours of the day whenever it is started.
    """
    latest = floor_to(now - scenario.duration - SAFETY_MARGIN, timedelta(minutes=1))
    wanted = WEEKDAYS.index(scenario.start_weekday) if scenario.start_weekday else None
    day = latest.astimezone(TOKYO).date()
    while True:
        midnight = datetime.combine(day, time(0), tzinfo=TOKYO)
        if (wanted is None or day.weekday() == wanted) and midnight <= latest:
            return midnight.astimezone(latest.tzinfo)
        day -= timedelta(days=1)
