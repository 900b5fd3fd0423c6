"""Condition evaluators: every condition type compiles once into an object with one `step` method.

`step(state, inp, ctx)` reads the rule's last-known values from `ctx`, updates its own slice of
the JSON state in place and returns `(holds, wake_at)`: whether the condition holds at
`inp.ts`, and the earliest time it could change without new data (a durable timer), or None.
Unknown or missing values never raise: they make a condition not hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import numpy as np

from rules.models import (
    AbsenceCondition,
    AllCondition,
    AnomalyCondition,
    AnyCondition,
    Condition,
    DurationCondition,
    EventCondition,
    GeofenceCondition,
    NotCondition,
    RateCondition,
    StateCondition,
    ThresholdCondition,
    WindowCondition,
)

EARTH_RADIUS_M = 6_371_008.8
MAD_TO_SIGMA = 0.6745  # makes the MAD z-score comparable to a normal z-score
RATE_MAX_SAMPLES = 240
UTC = ZoneInfo("UTC")
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Input:
    """One thing that happened to a device, at device time `ts` (epoch seconds)."""

    kind: Literal["reading", "event", "tick"]
    ts: float
    metrics: Mapping[str, Any] = field(default_factory=dict)
    event: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    """What a condition may read besides its own state: values, the device's place and zone."""

    values: dict[str, Any]
    home: tuple[float, float] | None = None
    zone: ZoneInfo = UTC
    observations: dict[str, Any] = field(default_factory=dict)


Step = tuple[bool, float | None]


class Evaluator(Protocol):
    """The one protocol every compiled condition follows."""

    key: str

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step: ...


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (booleans, strings, NaN, missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def same(a: Any, b: Any) -> bool:
    """Equality that does not confuse True with 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _slot(state: dict[str, Any], key: str) -> dict[str, Any]:
    slot = state.get(key)
    if slot is None:
        slot = state[key] = {}
    return slot


class Threshold:
    """Holds past the trigger level; stops holding only past the clear level (hysteresis)."""

    def __init__(self, key: str, c: ThresholdCondition) -> None:
        spec = c.threshold
        self.key, self.metric = key, spec.metric
        self.high = spec.above is not None
        trigger = spec.above if spec.above is not None else spec.below
        assert trigger is not None  # the spec guarantees one direction
        clear = spec.clear_below if self.high else spec.clear_above
        self.trigger: float = trigger
        self.clear: float = trigger if clear is None else clear

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        slot = _slot(state, self.key)
        value = number(ctx.values.get(self.metric))
        if value is None:
            slot["h"] = False
            return False, None
        was = bool(slot.get("h"))
        if self.high:
            holds = value > self.trigger or (was and value >= self.clear)
        else:
            holds = value < self.trigger or (was and value <= self.clear)
        slot["h"] = holds
        return holds, None


class State:
    """A metric equals a value, differs from it, or is one of several."""

    def __init__(self, key: str, c: StateCondition) -> None:
        spec = c.state
        self.key, self.metric = key, spec.metric
        self.equals, self.not_equals, self.one_of = spec.equals, spec.not_equals, spec.one_of

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        value = ctx.values.get(self.metric)
        if value is None:
            return False, None
        if self.equals is not None:
            return same(value, self.equals), None
        if self.not_equals is not None:
            return not same(value, self.not_equals), None
        return any(same(value, option) for option in self.one_of or ()), None


class Absence:
    """No reading for `after`, counted from the newest device time seen (never moves back)."""

    def __init__(self, key: str, c: AbsenceCondition) -> None:
        self.key, self.metric = key, c.absence.metric
        self.after = c.absence.after.total_seconds()

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        slot = _slot(state, self.key)
        fresh = inp.kind != "tick" and (self.metric is None or self.metric in inp.metrics)
        if fresh:
            slot["t"] = max(slot.get("t", inp.ts), inp.ts)
        last = slot.get("t")
        if last is None:
            return False, None
        due = last + self.after
        return (True, None) if inp.ts >= due else (False, due)


class Rate:
    """Change of a metric per `per`, between the oldest sample in `window` and the newest."""

    def __init__(self, key: str, c: RateCondition) -> None:
        spec = c.rate
        self.key, self.metric = key, spec.metric
        self.window = spec.window.total_seconds()
        self.per = spec.per.total_seconds()
        self.min_span = (spec.min_span or spec.window / 2).total_seconds()
        self.above, self.below = spec.above, spec.below

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        slot = _slot(state, self.key)
        value = number(inp.metrics.get(self.metric))
        if value is not None:
            samples = [s for s in slot.get("s", []) if s[0] >= inp.ts - self.window]
            samples.append([inp.ts, value])
            slot["s"] = samples[-RATE_MAX_SAMPLES:]
            slot["r"] = self._rate(slot["s"])
        rate = slot.get("r")
        if rate is None:
            return False, None
        ctx.observations["rate"] = round(rate, 6)
        holds = rate > self.above if self.above is not None else rate < (self.below or 0.0)
        return holds, None

    def _rate(self, samples: list[list[float]]) -> float | None:
        (t0, v0), (t1, v1) = samples[0], samples[-1]
        span = t1 - t0
        if span < self.min_span or span <= 0:
            return None
        return (v1 - v0) / span * self.per


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def in_polygon(lat: float, lon: float, polygon: tuple[tuple[float, float], ...]) -> bool:
    """Ray casting on [lat, lon] vertices (fine for areas the size of a city)."""
    inside = False
    j = len(polygon) - 1
    for i, (lat_i, lon_i) in enumerate(polygon):
        lat_j, lon_j = polygon[j]
        if (lat_i > lat) != (lat_j > lat):
            cross = lon_i + (lat - lat_i) * (lon_j - lon_i) / (lat_j - lat_i)
            if lon < cross:
                inside = not inside
        j = i
    return inside


class Geofence:
    """Inside (or outside) a circle, polygon or the device's home; unknown position → False."""

    def __init__(self, key: str, c: GeofenceCondition) -> None:
        self.key, self.spec = key, c.geofence

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        lat = number(ctx.values.get(self.spec.lat_metric))
        lon = number(ctx.values.get(self.spec.lon_metric))
        inside = None if lat is None or lon is None else self._inside(lat, lon, ctx)
        if inside is None:
            return False, None
        return inside == (self.spec.when == "inside"), None

    def _inside(self, lat: float, lon: float, ctx: Context) -> bool | None:
        spec = self.spec
        if spec.circle is not None:
            return haversine_m(lat, lon, spec.circle.lat, spec.circle.lon) <= spec.circle.radius_m
        if spec.polygon is not None:
            return in_polygon(lat, lon, spec.polygon)
        if spec.home is None or ctx.home is None:
            return None
        return haversine_m(lat, lon, *ctx.home) <= spec.home.radius_m


class Anomaly:
    """Robust z-score of each new value against the device's own previous values."""

    def __init__(self, key: str, c: AnomalyCondition) -> None:
        self.key, self.spec = key, c.anomaly

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        slot = _slot(state, self.key)
        value = number(inp.metrics.get(self.spec.metric))
        floor = self.spec.learn_above
        if value is not None and floor is not None and value <= floor:
            slot["z"] = None  # idle: not judged, not learned
        elif value is not None:
            history = slot.get("h", [])
            slot["z"], slot["m"] = self._score(history, value)
            slot["h"] = [*history, value][-self.spec.history :]
        z, median = slot.get("z"), slot.get("m")
        if median is not None:
            ctx.observations["median"] = median
        if z is None:
            return False, None
        ctx.observations["z"] = round(z, 4)
        threshold, direction = self.spec.z, self.spec.direction
        if direction == "high":
            return z >= threshold, None
        if direction == "low":
            return z <= -threshold, None
        return abs(z) >= threshold, None

    def _score(self, history: list[float], value: float) -> tuple[float | None, float | None]:
        if len(history) < self.spec.min_history:
            return None, None
        values = np.asarray(history, dtype=float)
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median)))
        if mad == 0.0:
            return None, median  # a flat history has no scale: unknown, not infinitely anomalous
        return MAD_TO_SIGMA * (value - median) / mad, median


class Event:
    """Holds at the instant a matching device event arrives (a pulse)."""

    def __init__(self, key: str, c: EventCondition) -> None:
        self.key, self.name, self.data = key, c.event.name, c.event.data

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        if inp.kind != "event" or inp.event != self.name:
            return False, None
        return all(same(inp.data.get(k), v) for k, v in self.data.items()), None


class Window:
    """Holds between two local times on some weekdays, in the owner's (or a given) time zone."""

    def __init__(self, key: str, c: WindowCondition) -> None:
        spec = c.window
        self.key, self.start, self.end = key, spec.start, spec.end
        self.days = frozenset(_DAY_NAMES.index(d) for d in spec.days)
        self.zone = ZoneInfo(spec.time_zone) if spec.time_zone else None

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        zone = self.zone or ctx.zone
        local = datetime.fromtimestamp(inp.ts, zone)
        return self._inside(local), self._next_boundary(local, zone)

    def _inside(self, local: datetime) -> bool:
        now, day = local.time().replace(tzinfo=None), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= now < self.end
        previous_day = (day - 1) % 7
        return (day in self.days and now >= self.start) or (
            previous_day in self.days and now < self.end
        )

    def _next_boundary(self, local: datetime, zone: ZoneInfo) -> float | None:
        now = local.timestamp()
        for offset in range(9):
            date = (local - timedelta(days=1) + timedelta(days=offset)).date()
            candidates = sorted(
                datetime.combine(date, moment, zone).timestamp()
                for moment in (self.start, self.end)
            )
            for candidate in candidates:
                if candidate > now:
                    return candidate
        return None


class Duration:
    """The inner condition has held continuously for `for`: a durable timer in rule state."""

    def __init__(self, key: str, c: DurationCondition, child: Evaluator) -> None:
        self.key, self.child = key, child
        self.seconds = c.duration.for_.total_seconds()

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        slot = _slot(state, self.key)
        inner, inner_wake = self.child.step(state, inp, ctx)
        if not inner:
            slot.pop("since", None)
            slot.pop("met", None)
            return False, inner_wake
        since = slot.setdefault("since", inp.ts)
        if slot.get("met") or inp.ts >= since + self.seconds:
            slot["met"] = True  # sticky: a later device clock behind the timer cannot un-fire it
            return True, inner_wake
        return False, _earliest(inner_wake, since + self.seconds)


class All:
    """Every child holds."""

    def __init__(self, key: str, children: list[Evaluator]) -> None:
        self.key, self.children = key, children

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        holds, wake, stuck = True, None, False
        for child in self.children:
            child_holds, child_wake = child.step(state, inp, ctx)
            wake = _earliest(wake, child_wake)
            if not child_holds:
                holds = False
                stuck = stuck or child_wake is None  # only new data can change this child
        return holds, None if stuck else wake


class AnyOf:
    """At least one child holds."""

    def __init__(self, key: str, children: list[Evaluator]) -> None:
        self.key, self.children = key, children

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        holds, wake, stuck = False, None, False
        for child in self.children:
            child_holds, child_wake = child.step(state, inp, ctx)
            wake = _earliest(wake, child_wake)
            if child_holds:
                holds = True
                stuck = stuck or child_wake is None
        return holds, None if stuck else wake


class Not:
    """The child does not hold (unknown inside still counts as not holding)."""

    def __init__(self, key: str, child: Evaluator) -> None:
        self.key, self.child = key, child

    def step(self, state: dict[str, Any], inp: Input, ctx: Context) -> Step:
        holds, wake = self.child.step(state, inp, ctx)
        return not holds, wake


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


_LEAVES: dict[type, Callable[[str, Any], Evaluator]] = {
    ThresholdCondition: Threshold,
    StateCondition: State,
    AbsenceCondition: Absence,
    RateCondition: Rate,
    GeofenceCondition: Geofence,
    AnomalyCondition: Anomaly,
    EventCondition: Event,
    WindowCondition: Window,
}


def compile_condition(condition: Condition, key: str = "c") -> Evaluator:
    """Turn a validated condition tree into evaluators; `key` names each node's state slot."""
    if isinstance(condition, AllCondition):
        return All(key, [compile_condition(c, f"{key}.{i}") for i, c in enumerate(condition.all)])
    if isinstance(condition, AnyCondition):
        return AnyOf(key, [compile_condition(c, f"{key}.{i}") for i, c in enumerate(condition.any)])
    if isinstance(condition, NotCondition):
        return Not(key, compile_condition(condition.not_, f"{key}.n"))
    if isinstance(condition, DurationCondition):
        return Duration(key, condition, compile_condition(condition.duration.condition, f"{key}.d"))
    return _LEAVES[type(condition)](key, condition)


def referenced_metrics(condition: Condition) -> set[str]:
    """Metric names a condition reads from the last-known values."""
    if isinstance(condition, AllCondition | AnyCondition):
        children = condition.all if isinstance(condition, AllCondition) else condition.any
        return set().union(*(referenced_metrics(c) for c in children))
    if isinstance(condition, NotCondition):
        return referenced_metrics(condition.not_)
    if isinstance(condition, DurationCondition):
        return referenced_metrics(condition.duration.condition)
    if isinstance(condition, GeofenceCondition):
        return {condition.geofence.lat_metric, condition.geofence.lon_metric}
    if isinstance(condition, ThresholdCondition | StateCondition):
        spec = condition.threshold if isinstance(condition, ThresholdCondition) else condition.state
        return {spec.metric}
    return set()


def only_events(condition: Condition) -> bool:
    """True when the condition reads nothing but event pulses (no state to keep in order)."""
    if isinstance(condition, AllCondition | AnyCondition):
        children = condition.all if isinstance(condition, AllCondition) else condition.any
        return all(only_events(c) for c in children)
    return isinstance(condition, EventCondition)
