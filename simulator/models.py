"""Data the simulator reads and writes: device specs, faults, scenarios and ground truth."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from devices.protocol import DEVICE_UID_PATTERN

SESSION_FAULTS = frozenset(
    {"offline", "stuck_sensor", "clock_skew", "duplicate_burst", "malformed"}
)
_DURATION_RE = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")


def parse_duration(value: Any) -> timedelta:
    """'1d2h30m', '90s', a number of seconds or a timedelta, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        text = value.strip()
        sign = -1 if text.startswith("-") else 1
        match = _DURATION_RE.match(text.lstrip("+-"))
        if match and any(match.groups()):
            d, h, m, s = (int(g or 0) for g in match.groups())
            return sign * timedelta(days=d, hours=h, minutes=m, seconds=s)
    raise ValueError(f"not a duration: {value!r} (use e.g. '2h30m', '1d', '45s')")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceSpec(_Strict):
    """One simulated device: its id, product model, owner persona and (for cars) home."""

    uid: str = Field(pattern=DEVICE_UID_PATTERN)
    model: str
    persona: str = "commuter"
    home_lat: float = Field(default=35.6466, ge=-90, le=90)
    home_lon: float = Field(default=139.6532, ge=-180, le=180)
    firmware: str = "1.4.2"


class FaultSpec(_Strict):
    """A fault injected into one device at a time after the run starts, for a while."""

    device: str
    kind: str
    at: Duration
    duration: Duration | None = Field(default=None, alias="for")
    params: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Expectation(_Strict):
    """Ground truth: a moment of `kind` for `device` whose time falls in [after, by]."""

    device: str
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
    after: Duration = timedelta(0)
    by: Duration


class Scoring(_Strict):
    """Which of the platform's moments count as alerts when scoring."""

    severities: tuple[Literal["info", "warning", "critical"], ...] = ("warning", "critical")
    kinds: tuple[str, ...] | None = None  # when set, only these kinds are scored
    settle: Duration = timedelta(seconds=20)  # real time to wait for the platform after the run


class Scenario(_Strict):
    """A reproducible run: devices, faults at given times, and what should be noticed."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    duration: Duration
    start_weekday: (
        Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] | None
    ) = None
    interval: Duration = timedelta(minutes=5)
    speed: float | Literal["max"] = "max"
    seed: int = 1
    devices: tuple[DeviceSpec, ...] = Field(min_length=1)
    faults: tuple[FaultSpec, ...] = ()
    expect: tuple[Expectation, ...] = ()
    scoring: Scoring = Scoring()

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        uids = {d.uid for d in self.devices}
        if len(uids) != len(self.devices):
            raise ValueError("device uids must be unique")
        named = [f.device for f in self.faults] + [e.device for e in self.expect]
        for uid in named:
            if uid not in uids:
                raise ValueError(f"{uid!r} is not one of the scenario's devices")
        for fault in self.faults:
            if fault.at > self.duration:
                raise ValueError(f"fault {fault.kind} at {fault.at} is after the end of the run")
        for exp in self.expect:
            if exp.by < exp.after:
                raise ValueError(f"expectation {exp.kind}: 'by' is before 'after'")
        return self
