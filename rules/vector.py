"""Columnar (NumPy) evaluation of a rule over many devices at once.

Same decisions as the per-device engine (`rules/engine.py`) for the condition types that
vectorize: threshold, state on numbers and booleans, absence, duration, all, any, not. A rule
compiles into a `ColumnarRule`: a fixed layout of float64 slots that holds the rule's whole
state for one device (one row per device), and nodes that read and write their own columns.
`ColumnarRule.advance` moves many devices' rows by one input each with array operations.

The live rules step keeps these rows in PostgreSQL, one packed row per device
(`rules/columnar.py`); `FleetEvaluator` keeps them in memory for bulk evaluation and the
benchmark. Tests check that both engines produce the same edges, holding flags, timers and
(through `engine_state`) the same JSON state.

Row layout: the header (`RULE_ID` .. `STARTED`), then two slots per metric the rule tracks
(a value kind and a number, see `encode_value`), then the nodes' slots. NaN means "none".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rules.conditions import referenced_metrics
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
Rows = NDArray[np.float64]  # (devices, width)
NodeStep = tuple[Bools, Floats]

# Header slots of a row.
RULE_ID, VERSION, WIDTH, HOLDING, LAST_TS, DUE_AT, STARTED = range(7)
HEADER = 7

# Kinds of a last-known metric value. The engine keeps raw JSON values and compares with
# `same` (True is never 1) and `number` (finite, not boolean); the kind keeps exactly the
# distinctions those make. BIG_INT and OTHER values cannot be rebuilt from their number, so
# whoever stores rows keeps their raw value next to the row (`needs_raw`).
ABSENT, NULL, FLOAT, INT, BIG_INT, BOOL, OTHER = range(7)
EXACT_INT_LIMIT = 2**53  # every int of smaller magnitude is exact as a float64


def _numeric(kind: Floats) -> Bools:
    """Kinds the engine's `number` and `==` treat as numbers (FLOAT, INT, BIG_INT)."""
    return (kind >= FLOAT) & (kind <= BIG_INT)


class NotVectorizable(ValueError):
    """The condition uses a type the columnar engine does not handle (use the engine)."""


def encode_value(value: Any) -> tuple[int, float]:
    """A metric value as (kind, number); the number is NaN unless the value is a number or bool."""
    if value is None:
        return NULL, math.nan
    if isinstance(value, bool):
        return BOOL, float(value)
    if isinstance(value, float):
        return FLOAT, float(value)
    if isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:
            return OTHER, math.nan
        return (INT if abs(value) <= EXACT_INT_LIMIT else BIG_INT), number
    return OTHER, math.nan


def needs_raw(kind: int) -> bool:
    """True when a value of this kind cannot be rebuilt from (kind, number)."""
    return kind in (BIG_INT, OTHER)


def decode_value(kind: int, number: float) -> Any:
    """The value (kind, number) stands for; kinds that `needs_raw` cannot be decoded."""
    if kind == FLOAT:
        return number
    if kind == INT:
        return int(number)
    if kind == BOOL:
        return bool(number)
    if kind == NULL:
        return None
    raise ValueError(f"a value of kind {kind} needs its raw value")


@dataclass(slots=True)
class Inputs:
    """One input per row: device time, whether it is fresh data, and the metrics it carries.

    `fresh` is False for a timer tick (no data: values, absence and `LAST_TS` stay). Metric
    arrays are per row: `present` (the key is in the reading, even with a null value), and the
    value's kind and number (see `encode_value`); a metric no row carries may be left out.
    """

    ts: Floats
    fresh: Bools
    present: Mapping[str, Bools] = field(default_factory=dict)
    kinds: Mapping[str, NDArray[np.int8]] = field(default_factory=dict)
    numbers: Mapping[str, Floats] = field(default_factory=dict)

    @classmethod
    def ticks(cls, ts: Floats) -> Inputs:
        """Timer ticks at device times `ts` (no data)."""
        return cls(ts, np.zeros(len(ts), dtype=bool))


class _Round:
    """What nodes read while advancing rows: the rows themselves and this round's inputs."""

    def __init__(self, rows: Rows, inputs: Inputs, value_columns: Mapping[str, int]) -> None:
        self.rows, self.inputs, self.size = rows, inputs, len(rows)
        self._value_columns = value_columns

    def kind(self, metric: str) -> Floats:
        return self.rows[:, self._value_columns[metric]]

    def number(self, metric: str) -> Floats:
        """The last-known value as a finite number, NaN otherwise (the engine's `number`)."""
        column = self._value_columns[metric]
        kind, value = self.rows[:, column], self.rows[:, column + 1]
        return np.where(_numeric(kind) & np.isfinite(value), value, np.nan)

    def raw_number(self, metric: str) -> Floats:
        """The number slot of a metric as stored (NaN for values that are not numbers)."""
        return self.rows[:, self._value_columns[metric] + 1]

    def present(self, metric: str) -> Bools:
        present = self.inputs.present.get(metric)
        return np.zeros(self.size, dtype=bool) if present is None else present

    def none(self) -> Floats:
        return np.full(self.size, np.nan)


class _Node:
    """A compiled condition: `key` names its slice of the engine's JSON state."""

    key: str
    columns: tuple[int, ...] = ()

    def step(self, r: _Round) -> NodeStep:
        raise NotImplementedError

    def children(self) -> tuple[_Node, ...]:
        return ()

    def engine_slot(self, row: Floats) -> dict[str, Any] | None:
        """This node's slot in the engine's JSON state (None: the node keeps no state)."""
        return None

    def load_engine_slot(self, row: Floats, slot: Mapping[str, Any]) -> None:
        """Set this node's columns from its slot in the engine's JSON state."""


class _Threshold(_Node):
    def __init__(self, key: str, c: ThresholdCondition, column: int) -> None:
        spec = c.threshold
        self.key, self.columns, self.metric = key, (column,), spec.metric
        self.high = spec.above is not None
        trigger = spec.above if spec.above is not None else spec.below
        assert trigger is not None  # the spec guarantees one direction
        clear = spec.clear_below if self.high else spec.clear_above
        self.trigger, self.clear = trigger, trigger if clear is None else clear

    def step(self, r: _Round) -> NodeStep:
        (column,) = self.columns
        value, was = r.number(self.metric), r.rows[:, column] == 1.0
        with np.errstate(invalid="ignore"):
            if self.high:
                holds = (value > self.trigger) | (was & (value >= self.clear))
            else:
                holds = (value < self.trigger) | (was & (value <= self.clear))
        r.rows[:, column] = holds
        return holds, r.none()

    def engine_slot(self, row: Floats) -> dict[str, Any] | None:
        return {"h": bool(row[self.columns[0]] == 1.0)}

    def load_engine_slot(self, row: Floats, slot: Mapping[str, Any]) -> None:
        row[self.columns[0]] = 1.0 if slot.get("h") else 0.0


class _State(_Node):
    def __init__(self, key: str, c: StateCondition) -> None:
        spec = c.state
        self.key, self.metric = key, spec.metric
        self.negate = spec.not_equals is not None
        if spec.equals is not None:
            options: tuple[Any, ...] = (spec.equals,)
        elif spec.not_equals is not None:
            options = (spec.not_equals,)
        else:
            options = spec.one_of or ()
        for option in options:
            if isinstance(option, str):
                raise NotVectorizable("state conditions on text values")
            if not isinstance(option, bool) and not abs(option) < EXACT_INT_LIMIT:
                raise NotVectorizable("state conditions on numbers a float64 cannot hold exactly")
        self.booleans = [float(o) for o in options if isinstance(o, bool)]
        self.numbers = [float(o) for o in options if not isinstance(o, bool)]

    def step(self, r: _Round) -> NodeStep:
        kind, number = r.kind(self.metric), r.raw_number(self.metric)
        same = np.zeros(r.size, dtype=bool)
        if self.booleans:
            same |= (kind == BOOL) & _any_equal(number, self.booleans)
        if self.numbers:
            same |= _numeric(kind) & _any_equal(number, self.numbers)
        if self.negate:
            known = (kind != ABSENT) & (kind != NULL)
            return known & ~same, r.none()
        return same, r.none()


def _any_equal(values: Floats, options: list[float]) -> Bools:
    result = values == options[0]
    for option in options[1:]:
        result |= values == option
    return result


class _Absence(_Node):
    def __init__(self, key: str, c: AbsenceCondition, column: int) -> None:
        self.key, self.columns = key, (column,)
        self.metric, self.after = c.absence.metric, c.absence.after.total_seconds()

    def step(self, r: _Round) -> NodeStep:
        (column,) = self.columns
        fresh = r.inputs.fresh if self.metric is None else r.present(self.metric)
        ts = r.inputs.ts
        last = np.where(fresh, np.fmax(r.rows[:, column], ts), r.rows[:, column])
        r.rows[:, column] = last
        due = last + self.after
        with np.errstate(invalid="ignore"):
            holds = ts >= due
        return holds, np.where(holds, np.nan, due)

    def engine_slot(self, row: Floats) -> dict[str, Any] | None:
        last = row[self.columns[0]]
        return {} if np.isnan(last) else {"t": float(last)}

    def load_engine_slot(self, row: Floats, slot: Mapping[str, Any]) -> None:
        row[self.columns[0]] = _float_or_nan(slot.get("t"))


class _Duration(_Node):
    def __init__(self, key: str, c: DurationCondition, columns: tuple[int, int], child: _Node):
        self.key, self.columns, self.child = key, columns, child
        self.seconds = c.duration.for_.total_seconds()

    def children(self) -> tuple[_Node, ...]:
        return (self.child,)

    def step(self, r: _Round) -> NodeStep:
        since_column, met_column = self.columns
        inner, inner_wake = self.child.step(r)
        ts = r.inputs.ts
        since = r.rows[:, since_column]
        since = np.where(inner, np.where(np.isnan(since), ts, since), np.nan)
        with np.errstate(invalid="ignore"):
            met = inner & ((r.rows[:, met_column] == 1.0) | (ts >= since + self.seconds))
        wake = np.where(inner & ~met, np.fmin(inner_wake, since + self.seconds), inner_wake)
        r.rows[:, since_column], r.rows[:, met_column] = since, met
        return met, wake

    def engine_slot(self, row: Floats) -> dict[str, Any] | None:
        since_column, met_column = self.columns
        if np.isnan(row[since_column]):
            return {}
        slot: dict[str, Any] = {"since": float(row[since_column])}
        if row[met_column] == 1.0:
            slot["met"] = True
        return slot

    def load_engine_slot(self, row: Floats, slot: Mapping[str, Any]) -> None:
        since_column, met_column = self.columns
        row[since_column] = _float_or_nan(slot.get("since"))
        row[met_column] = 1.0 if slot.get("met") else 0.0


class _Combine(_Node):
    def __init__(self, key: str, nodes: list[_Node], every: bool) -> None:
        self.key, self.nodes, self.every = key, nodes, every

    def children(self) -> tuple[_Node, ...]:
        return tuple(self.nodes)

    def step(self, r: _Round) -> NodeStep:
        results = [node.step(r) for node in self.nodes]  # every child: each keeps its state
        holds = np.stack([h for h, _ in results])
        wakes = np.stack([w for _, w in results])
        wake = np.fmin.reduce(wakes, axis=0)
        if self.every:  # a failing child no timer can change makes the timers pointless
            stuck = np.any(~holds & np.isnan(wakes), axis=0)
            return np.all(holds, axis=0), np.where(stuck, np.nan, wake)
        stuck = np.any(holds & np.isnan(wakes), axis=0)
        return np.any(holds, axis=0), np.where(stuck, np.nan, wake)


class _Not(_Node):
    def __init__(self, key: str, child: _Node) -> None:
        self.key, self.child = key, child

    def children(self) -> tuple[_Node, ...]:
        return (self.child,)

    def step(self, r: _Round) -> NodeStep:
        holds, wake = self.child.step(r)
        return ~holds, wake


def _float_or_nan(value: Any) -> float:
    return math.nan if value is None else float(value)


class _Compiler:
    """Turns a condition into nodes, giving each stateful node its columns after `first`."""

    def __init__(self, first: int) -> None:
        self.next = first

    def take(self, count: int) -> tuple[int, ...]:
        columns = tuple(range(self.next, self.next + count))
        self.next += count
        return columns

    def node(self, condition: Condition, key: str) -> _Node:
        if isinstance(condition, ThresholdCondition):
            return _Threshold(key, condition, *self.take(1))
        if isinstance(condition, StateCondition):
            return _State(key, condition)
        if isinstance(condition, AbsenceCondition):
            return _Absence(key, condition, *self.take(1))
        if isinstance(condition, DurationCondition):
            child = self.node(condition.duration.condition, f"{key}.d")
            since, met = self.take(2)
            return _Duration(key, condition, (since, met), child)
        if isinstance(condition, AllCondition):
            nodes = [self.node(c, f"{key}.{i}") for i, c in enumerate(condition.all)]
            return _Combine(key, nodes, every=True)
        if isinstance(condition, AnyCondition):
            nodes = [self.node(c, f"{key}.{i}") for i, c in enumerate(condition.any)]
            return _Combine(key, nodes, every=False)
        if isinstance(condition, NotCondition):
            return _Not(key, self.node(condition.not_, f"{key}.n"))
        raise NotVectorizable(f"{type(condition).__name__} has no columnar form")


def _walk(node: _Node) -> Iterable[_Node]:
    yield node
    for child in node.children():
        yield from _walk(child)


def absence_metrics(condition: Condition) -> set[str]:
    """Metrics whose mere presence in a reading matters (absence of one metric)."""
    if isinstance(condition, AbsenceCondition):
        return {condition.absence.metric} if condition.absence.metric else set()
    if isinstance(condition, AllCondition | AnyCondition):
        children = condition.all if isinstance(condition, AllCondition) else condition.any
        return set().union(*(absence_metrics(c) for c in children))
    if isinstance(condition, NotCondition):
        return absence_metrics(condition.not_)
    if isinstance(condition, DurationCondition):
        return absence_metrics(condition.duration.condition)
    return set()


class ColumnarRule:
    """One rule's condition in columnar form, for rows of one rule id and version.

    `metrics` are the metrics whose last-known values the rule keeps (the engine's
    `CompiledRule.metrics`: what the condition reads plus the moment's fact sources).
    """

    def __init__(
        self, condition: Condition, metrics: Iterable[str], rule_id: int = 0, version: int = 1
    ) -> None:
        self.metrics = tuple(sorted(metrics))
        self.value_columns = {m: HEADER + 2 * i for i, m in enumerate(self.metrics)}
        compiler = _Compiler(HEADER + 2 * len(self.metrics))
        self.root = compiler.node(condition, "c")
        self.width = compiler.next
        self.stateful = [node for node in _walk(self.root) if node.columns]
        self.input_metrics = frozenset(self.metrics) | absence_metrics(condition)
        missing = {n.metric for n in _walk(self.root) if isinstance(n, _Threshold | _State)}
        if missing - set(self.metrics):
            raise ValueError(f"metrics the condition reads are not tracked: {missing}")
        template = np.full(self.width, np.nan)
        template[[RULE_ID, VERSION, WIDTH]] = rule_id, version, self.width
        template[[HOLDING, STARTED]] = 0.0
        template[list(self.value_columns.values())] = ABSENT
        for node in self.stateful:
            node.load_engine_slot(template, {})
        self.template = template

    def fresh_rows(self, count: int) -> Rows:
        """Rows of devices this rule has never seen (column-major: nodes work on columns)."""
        return np.asfortranarray(np.tile(self.template, (count, 1)))

    def restart(self, rows: Rows) -> Rows:
        """Rows with conditions restarted, keeping whether the rule held and `LAST_TS`
        (what the engine keeps when a rule changes version or an evaluation fails)."""
        fresh = self.fresh_rows(len(rows))
        fresh[:, HOLDING], fresh[:, LAST_TS] = rows[:, HOLDING], rows[:, LAST_TS]
        return fresh

    @staticmethod
    def late(rows: Rows, inputs: Inputs) -> Bools:
        """Fresh inputs older than the newest device time the rule has decided on."""
        with np.errstate(invalid="ignore"):
            return inputs.fresh & (inputs.ts < rows[:, LAST_TS])

    def advance(self, rows: Rows, inputs: Inputs) -> tuple[Bools, Bools]:
        """Advance every row by its input (late inputs must be left out by the caller);
        rows change in place. Returns (started holding, stopped holding) per row."""
        for metric, column in self.value_columns.items():
            present = inputs.present.get(metric)
            if present is None:
                continue
            np.copyto(rows[:, column], inputs.kinds[metric], where=present)
            np.copyto(rows[:, column + 1], inputs.numbers[metric], where=present)
        rows[:, STARTED] = 1.0
        holds, wake = self.root.step(_Round(rows, inputs, self.value_columns))
        was = rows[:, HOLDING] == 1.0
        rows[:, HOLDING], rows[:, DUE_AT] = holds, wake
        newest = np.fmax(rows[:, LAST_TS], inputs.ts)
        np.copyto(rows[:, LAST_TS], newest, where=inputs.fresh)
        return holds & ~was, was & ~holds

    def values(self, row: Floats, raw: Mapping[str, Any], metrics: Iterable[str]) -> dict[str, Any]:
        """Last-known values of some tracked metrics, as the engine keeps them (known ones only).

        `raw` holds the values whose kind `needs_raw`.
        """
        values: dict[str, Any] = {}
        for metric in metrics:
            column = self.value_columns[metric]
            kind = int(row[column])
            if kind == ABSENT:
                continue
            values[metric] = (
                raw.get(metric) if needs_raw(kind) else decode_value(kind, row[column + 1])
            )
        return values

    def engine_state(self, row: Floats, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The row's state in the per-device engine's JSON form (`RuleState.state`)."""
        nodes: dict[str, Any] = {}
        if row[STARTED] == 1.0:
            for node in self.stateful:
                nodes[node.key] = node.engine_slot(row)
        return {"v": self.values(row, raw, self.metrics), "n": nodes}

    def row_from_engine_state(
        self, state: Mapping[str, Any], holding: bool, last_ts: float | None, due_at: float | None
    ) -> tuple[Floats, dict[str, Any]]:
        """A row holding the engine's JSON state, and the raw values it cannot hold itself."""
        row = self.template.copy()
        raw: dict[str, Any] = {}
        for metric, value in (state.get("v") or {}).items():
            if metric not in self.value_columns:
                continue
            kind, number = encode_value(value)
            row[self.value_columns[metric]], row[self.value_columns[metric] + 1] = kind, number
            if needs_raw(kind):
                raw[metric] = value
        nodes = state.get("n") or {}
        for node in self.stateful:
            node.load_engine_slot(row, nodes.get(node.key) or {})
        row[STARTED] = 1.0 if nodes else 0.0
        row[HOLDING] = 1.0 if holding else 0.0
        row[LAST_TS], row[DUE_AT] = _float_or_nan(last_ts), _float_or_nan(due_at)
        return row, raw


# ---------------------------------------------------------------- a fleet kept in memory


@dataclass(slots=True)
class Round:
    """One reading per device at most: device times (NaN: none) and metric columns (NaN: absent).

    Metrics named in `booleans` hold 0/1 for False/True; the others are numbers.
    """

    ts: Floats
    metrics: Mapping[str, Floats]
    booleans: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FleetEdges:
    """Device indexes whose rule started (triggered) or stopped (cleared) holding this round."""

    rule_index: int
    triggered: NDArray[np.intp]
    cleared: NDArray[np.intp]


class FleetEvaluator:
    """Several rules over `size` devices in memory, advanced one round of readings at a time."""

    def __init__(
        self, conditions: list[Condition], size: int, metrics: list[Iterable[str]] | None = None
    ) -> None:
        tracked = metrics or [referenced_metrics(c) for c in conditions]
        self.rules = [
            ColumnarRule(c, m, rule_id=i)
            for i, (c, m) in enumerate(zip(conditions, tracked, strict=True))
        ]
        self.rows = [rule.fresh_rows(size) for rule in self.rules]

    @property
    def holding(self) -> Bools:
        """(rules, devices): whether each rule holds for each device."""
        return np.stack([rows[:, HOLDING] == 1.0 for rows in self.rows])

    @property
    def due(self) -> Floats:
        """(rules, devices): each rule's next timer per device (NaN: none)."""
        return np.stack([rows[:, DUE_AT] for rows in self.rows])

    def step(self, batch: Round) -> list[FleetEdges]:
        """Advance every rule by one round; late readings (older than the last) are skipped."""
        has_input = ~np.isnan(batch.ts)
        present = {name: has_input & ~np.isnan(column) for name, column in batch.metrics.items()}
        kinds = {
            name: np.full(len(batch.ts), BOOL if name in batch.booleans else FLOAT, dtype=np.int8)
            for name in batch.metrics
        }
        everyone = Inputs(batch.ts, has_input, present, kinds, batch.metrics)
        edges = []
        for index, (rule, rows) in enumerate(zip(self.rules, self.rows, strict=True)):
            active = has_input & ~rule.late(rows, everyone)
            # Advance every row in place and put back the few that had nothing to advance by
            # (cheaper than moving the many that had).
            idle = np.flatnonzero(~active)
            kept = rows[idle]
            triggered, cleared = rule.advance(rows, everyone)
            rows[idle] = kept
            edges.append(
                FleetEdges(
                    index, np.flatnonzero(triggered & active), np.flatnonzero(cleared & active)
                )
            )
        return edges
