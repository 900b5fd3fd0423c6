"""Columnar evaluation of one rule over a whole fleet at once (NumPy), for bulk evaluation.

Same semantics as the per-device engine (`rules/engine.py`) for the condition types that
vectorize: threshold, state (numbers and booleans), duration, absence, all, any, not. Each
`step` takes one round of inputs (at most one reading per device, device time `ts`, NaN
where a device has nothing) and returns the devices whose rule started or stopped holding.
A test checks both engines produce the same edges on random timelines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rules.models import (
    AbsenceCondition,
    AllCondition,
    AnyCondition,
    Condition,
    DurationCondition,
    NotCondition,
    StateCondition,
    ThresholdCondition,
)

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
NodeStep = tuple[Bools, Floats]


class NotVectorizable(ValueError):
    """The condition uses a type the columnar engine does not handle (use the engine)."""


@dataclass(slots=True)
class Round:
    """One reading per device at most: device times (NaN: none) and metric columns (NaN: absent)."""

    ts: Floats
    metrics: Mapping[str, Floats]


class _Fleet:
    """Per-device values the nodes read: last-known metric values and this round's inputs."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: dict[str, Floats] = {}
        self.present: dict[str, Bools] = {}
        self.ts: Floats = np.full(size, np.nan)
        self.active: Bools = np.zeros(size, dtype=bool)

    def value(self, metric: str) -> Floats:
        if metric not in self.values:
            self.values[metric] = np.full(self.size, np.nan)
        return self.values[metric]


class _Threshold:
    def __init__(self, c: ThresholdCondition, size: int) -> None:
        spec = c.threshold
        self.metric, self.high = spec.metric, spec.above is not None
        trigger = spec.above if spec.above is not None else spec.below
        assert trigger is not None
        clear = spec.clear_below if self.high else spec.clear_above
        self.trigger, self.clear = trigger, trigger if clear is None else clear
        self.h = np.zeros(size, dtype=bool)

    def step(self, f: _Fleet) -> NodeStep:
        v = f.value(self.metric)
        with np.errstate(invalid="ignore"):
            if self.high:
                holds = (v > self.trigger) | (self.h & (v >= self.clear))
            else:
                holds = (v < self.trigger) | (self.h & (v <= self.clear))
        self.h = np.where(f.active, holds, self.h)
        return holds, np.full(f.size, np.nan)


class _State:
    def __init__(self, c: StateCondition, size: int) -> None:
        spec = c.state
        self.metric = spec.metric
        options = [spec.equals] if spec.equals is not None else spec.one_of or [spec.not_equals]
        if any(isinstance(o, str) for o in options):
            raise NotVectorizable("state conditions on text values")
        self.options = np.asarray([float(o) for o in options if o is not None])
        self.negate = spec.not_equals is not None

    def step(self, f: _Fleet) -> NodeStep:
        v = f.value(self.metric)
        known = ~np.isnan(v)
        matched = np.isin(v, self.options)
        holds = known & (~matched if self.negate else matched)
        return holds, np.full(f.size, np.nan)


class _Absence:
    def __init__(self, c: AbsenceCondition, size: int) -> None:
        self.metric, self.after = c.absence.metric, c.absence.after.total_seconds()
        self.last = np.full(size, np.nan)

    def step(self, f: _Fleet) -> NodeStep:
        fresh = f.active if self.metric is None else f.present.get(self.metric, f.active & False)
        self.last = np.where(fresh, np.fmax(self.last, f.ts), self.last)
        due = self.last + self.after
        with np.errstate(invalid="ignore"):
            holds = f.ts >= due
        return holds, np.where(holds, np.nan, due)


class _Duration:
    def __init__(self, c: DurationCondition, size: int) -> None:
        self.child = _compile(c.duration.condition, size)
        self.seconds = c.duration.for_.total_seconds()
        self.since = np.full(size, np.nan)
        self.met = np.zeros(size, dtype=bool)

    def step(self, f: _Fleet) -> NodeStep:
        inner, inner_wake = self.child.step(f)
        since = np.where(inner, np.where(np.isnan(self.since), f.ts, self.since), np.nan)
        with np.errstate(invalid="ignore"):
            met = inner & (self.met | (f.ts >= since + self.seconds))
        waiting = inner & ~met
        wake = np.where(waiting, np.fmin(inner_wake, since + self.seconds), inner_wake)
        self.since = np.where(f.active, since, self.since)
        self.met = np.where(f.active, met, self.met)
        return met, wake


class _Combine:
    def __init__(self, children: list[_Node], every: bool) -> None:
        self.children, self.every = children, every

    def step(self, f: _Fleet) -> NodeStep:
        results = [child.step(f) for child in self.children]
        holds = np.stack([h for h, _ in results])
        wakes = np.stack([w for _, w in results])
        wake = np.fmin.reduce(wakes, axis=0)
        if self.every:
            stuck = np.any(~holds & np.isnan(wakes), axis=0)
            return np.all(holds, axis=0), np.where(stuck, np.nan, wake)
        stuck = np.any(holds & np.isnan(wakes), axis=0)
        return np.any(holds, axis=0), np.where(stuck, np.nan, wake)


class _Not:
    def __init__(self, child: _Node) -> None:
        self.child = child

    def step(self, f: _Fleet) -> NodeStep:
        holds, wake = self.child.step(f)
        return ~holds, wake


_Node = _Threshold | _State | _Absence | _Duration | _Combine | _Not


def _compile(condition: Condition, size: int) -> _Node:
    if isinstance(condition, ThresholdCondition):
        return _Threshold(condition, size)
    if isinstance(condition, StateCondition):
        return _State(condition, size)
    if isinstance(condition, AbsenceCondition):
        return _Absence(condition, size)
    if isinstance(condition, DurationCondition):
        return _Duration(condition, size)
    if isinstance(condition, AllCondition):
        return _Combine([_compile(c, size) for c in condition.all], every=True)
    if isinstance(condition, AnyCondition):
        return _Combine([_compile(c, size) for c in condition.any], every=False)
    if isinstance(condition, NotCondition):
        return _Not(_compile(condition.not_, size))
    raise NotVectorizable(f"{type(condition).__name__} has no columnar form")


@dataclass(frozen=True, slots=True)
class FleetEdges:
    """Device indexes whose rule started (triggered) or stopped (cleared) holding this round."""

    rule_index: int
    triggered: NDArray[np.intp]
    cleared: NDArray[np.intp]


class FleetEvaluator:
    """Several rules over `size` devices, advanced one round of readings at a time."""

    def __init__(self, conditions: list[Condition], size: int) -> None:
        self.fleet = _Fleet(size)
        self.roots = [_compile(c, size) for c in conditions]
        self.holding = np.zeros((len(conditions), size), dtype=bool)
        self.due = np.full((len(conditions), size), np.nan)
        self.last_ts = np.full(size, np.nan)

    def step(self, batch: Round) -> list[FleetEdges]:
        """Advance every rule by one round; late readings (older than the last) are skipped."""
        f = self.fleet
        with np.errstate(invalid="ignore"):
            late = batch.ts < self.last_ts
        f.active = ~np.isnan(batch.ts) & ~late
        f.ts = batch.ts
        f.present = {}
        for name, column in batch.metrics.items():
            present = f.active & ~np.isnan(column)
            f.present[name] = present
            f.values[name] = np.where(present, column, f.value(name))
        self.last_ts = np.where(f.active, np.fmax(self.last_ts, batch.ts), self.last_ts)
        edges = []
        for index, root in enumerate(self.roots):
            holds, wake = root.step(f)
            was = self.holding[index]
            triggered = np.flatnonzero(f.active & holds & ~was)
            cleared = np.flatnonzero(f.active & ~holds & was)
            self.holding[index] = np.where(f.active, holds, was)
            self.due[index] = np.where(f.active, wake, self.due[index])
            edges.append(FleetEdges(index, triggered, cleared))
        return edges
