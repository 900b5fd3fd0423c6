"""The live path of the rules the columnar evaluator handles: packed device rows in, edges out.

State of these rules lives in `columnar_rule_states`, one row per device: `slots` packs one
float64 row per rule (little-endian, the layout of `rules/vector.py`), each starting with its
rule id, version and width, so a packed row describes itself. `raw_values` keeps, per rule,
the last-known values a float cannot hold exactly (text, very large integers).

`ColumnarBatch` evaluates one ingest batch: it unpacks the rows of the batch's devices into
one matrix per rule (devices whose packed row starts with their current rules, at their
current versions, are sliced out in bulk), advances each rule over the batch's inputs
round by round (the k-th input of every device in round k, skipping late ones), and packs
the rows again, writing only those that changed. `fire_timers` does the same for timers the
scheduler claimed.

Rules move between this store and `rule_states` when a rule's form changes (an edit, or a
release that vectorizes more condition types): the new owner takes over the state. With the
same rule version the whole state carries over (`ColumnarRule.row_from_engine_state` /
`engine_state`); after an edit, only whether the rule held and its newest device time do,
as in the engine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from numpy.typing import NDArray

from rules.batch import BatchInputs
from rules.engine import CompiledRule, Edge, RuleState
from rules.vector import (
    DUE_AT,
    HEADER,
    HOLDING,
    LAST_TS,
    RULE_ID,
    VERSION,
    WIDTH,
    ColumnarRule,
    Floats,
    Inputs,
    Rows,
)

log = structlog.get_logger(__name__)

Ints = NDArray[np.int64]
RawValues = dict[str, Any]  # metric → raw value, for one rule and device
EdgeKey = tuple[int, int, int]  # (device id, rule id, input index within the device)


@dataclass(slots=True)
class Segment:
    """One rule's row inside a device's packed row."""

    rule_id: int
    version: int
    row: Floats
    raw: RawValues = field(default_factory=dict)


def unpack(floats: Floats) -> list[Segment]:
    """The segments of one packed row; a damaged tail is dropped (and logged)."""
    segments, position = [], 0
    while position + HEADER <= len(floats):
        width = int(floats[position + WIDTH])
        if width < HEADER or position + width > len(floats):
            break
        row = floats[position : position + width].copy()
        segments.append(Segment(int(row[RULE_ID]), int(row[VERSION]), row))
        position += width
    if position != len(floats):
        log.error("rules.columnar_row_damaged", kept_segments=len(segments))
    return segments


def pack(rows: Sequence[Floats]) -> bytes:
    """Rows of one device as stored in `slots`."""
    return np.concatenate(rows).astype("<f8", copy=False).tobytes() if rows else b""


@dataclass(slots=True)
class PackedRows:
    """Packed rows of some devices as loaded: every row's floats back to back."""

    device_ids: Ints
    floats: Floats
    starts: Ints
    lengths: Ints
    raw: dict[int, dict[str, RawValues]]  # device id → rule id (text) → raw values

    @classmethod
    def empty(cls) -> PackedRows:
        """No rows."""
        none = np.zeros(0, dtype=np.int64)
        return cls(none, np.zeros(0), none, none, {})

    @classmethod
    def from_parts(
        cls, device_ids: Ints, slots: bytes, byte_lengths: Ints, raw: Mapping[Any, Any] | None
    ) -> PackedRows:
        """Rows from aggregated columns: ids, all slots concatenated, each row's byte length."""
        lengths = byte_lengths.astype(np.int64) // 8
        starts = np.cumsum(lengths) - lengths
        floats = np.frombuffer(slots, dtype="<f8").astype(np.float64)
        return cls(
            device_ids.astype(np.int64),
            floats,
            starts,
            lengths,
            {int(device): dict(values) for device, values in (raw or {}).items()},
        )

    @classmethod
    def from_rows(
        cls, rows: Sequence[tuple[int, bytes, Mapping[str, RawValues] | None]]
    ) -> PackedRows:
        """Rows as (device id, slots, raw values) tuples."""
        return cls.from_parts(
            np.asarray([r[0] for r in rows], dtype=np.int64),
            b"".join(r[1] for r in rows),
            np.asarray([len(r[1]) for r in rows], dtype=np.int64),
            {r[0]: r[2] for r in rows if r[2]},
        )

    def segments(self, index: int) -> list[Segment]:
        """The segments of the row at `index`, with their raw values."""
        start = int(self.starts[index])
        segments = unpack(self.floats[start : start + int(self.lengths[index])])
        raw = self.raw.get(int(self.device_ids[index]), {})
        for segment in segments:
            segment.raw = dict(raw.get(str(segment.rule_id), {}))
        return segments


@dataclass(slots=True)
class ColumnarWrites:
    """Packed rows to store (only changed ones) and devices left with no columnar state."""

    device_ids: list[int] = field(default_factory=list)
    slots: list[bytes] = field(default_factory=list)
    raw: list[str | None] = field(default_factory=list)
    due_at: list[float] = field(default_factory=list)  # NaN: no timer
    deleted: list[int] = field(default_factory=list)

    def add(self, device_id: int, segments: Sequence[Segment]) -> None:
        """Store a device's segments (or delete its row when none are left)."""
        if not segments:
            self.deleted.append(device_id)
            return
        rows = [s.row for s in segments]
        raw = {str(s.rule_id): s.raw for s in segments if s.raw}
        self.device_ids.append(device_id)
        self.slots.append(pack(rows))
        self.raw.append(json.dumps(raw) if raw else None)
        self.due_at.append(float(np.fmin.reduce([row[DUE_AT] for row in rows])))


def engine_view(rule: CompiledRule | None, segment: Segment, device_id: int) -> RuleState:
    """A segment as the engine's RuleState: with the condition state when `rule` is the
    segment's version in columnar form, else only whether it held and the times."""
    row = segment.row
    state: dict[str, Any] = {"v": {}, "n": {}}
    if rule is not None and rule.columnar is not None and segment.version == rule.version:
        state = rule.columnar.engine_state(row, segment.raw)
    return RuleState(
        rule_id=segment.rule_id,
        device_id=device_id,
        version=segment.version,
        state=state,
        holding=bool(row[HOLDING] == 1.0),
        last_ts=_optional(row[LAST_TS]),
        due_at=_optional(row[DUE_AT]),
    )


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def row_from_engine(columnar: ColumnarRule, rule: CompiledRule, rs: RuleState) -> Segment:
    """An engine state as a segment: all of it for the current version, else a restart."""
    same = rs.version == rule.version
    row, raw = columnar.row_from_engine_state(
        rs.state if same else {}, rs.holding, rs.last_ts, rs.due_at if same else None
    )
    return Segment(rule.id, rule.version, row, raw)


class _RuleRows:
    """One rule's rows for the batch's devices, collected in chunks, then evaluated."""

    def __init__(self, rule: CompiledRule) -> None:
        assert rule.columnar is not None
        self.rule, self.columnar = rule, rule.columnar
        self._positions: list[Ints] = []
        self._chunks: list[Rows] = []
        self.count = 0
        self.raw: dict[int, RawValues] = {}  # row index → raw values
        self.positions: Ints = np.zeros(0, dtype=np.int64)
        self.rows: Rows = np.zeros((0, self.columnar.width))

    def add(self, positions: Ints, rows: Rows) -> int:
        """Append rows for devices at `positions`; the index of the first one."""
        first = self.count
        self._positions.append(positions)
        self._chunks.append(rows)
        self.count += len(positions)
        return first

    def seal(self) -> None:
        """Join the chunks into one matrix (column-major: nodes work on columns)."""
        if self._chunks:
            self.positions = np.concatenate(self._positions)
            self.rows = np.asfortranarray(np.concatenate(self._chunks))


@dataclass(slots=True)
class _FastGroup:
    """Devices whose packed row starts with their current rules, at their current versions."""

    rule_ids: tuple[int, ...]
    device_ids: Ints
    old: Rows  # the loaded segments of those rules, one row per device
    first_rows: list[int]  # per rule of the layout: index of the group's first row in it
    raw: dict[int, RawValues]  # row in the group → raw values as loaded (rule id → values)
    tails: dict[int, int]  # row in the group → device id, for rows with more segments after


class ColumnarBatch:
    """Columnar rules of one batch: unpacked from `packed`, advanced, packed again.

    `rules_of` maps each known device's position in `inputs.device_ids` to its columnar rules
    (by id). `engine_states` are the batch's loaded `rule_states` rows, from which a rule now
    handled here takes over (`taken_from_engine` lists them for deletion). `kept_rule_ids`
    are the rules that still exist (enabled or not): segments of other rules are dropped.
    """

    def __init__(
        self,
        inputs: BatchInputs,
        rules_of: Mapping[int, Sequence[CompiledRule]],
        packed: PackedRows,
        engine_states: Mapping[tuple[int, int], RuleState],
        kept_rule_ids: Container[int],
    ) -> None:
        self.inputs, self.packed = inputs, packed
        self.taken_from_engine: list[tuple[int, int]] = []
        self._kept = kept_rule_ids
        self._engine_states = engine_states
        self._rules: dict[int, _RuleRows] = {}
        self._fast: list[_FastGroup] = []
        self._rows_of: dict[int, list[tuple[_RuleRows, int]]] = {}  # other devices' rows
        self._others: dict[int, list[Segment]] = {}  # segments of rules not evaluated here
        self._loaded_segments: dict[int, int] = {}
        self._index = {int(d): i for i, d in enumerate(packed.device_ids)}
        groups: dict[int, list[int]] = defaultdict(list)  # devices sharing one rule sequence
        for position, rules in rules_of.items():
            groups[id(rules)].append(position)
        for positions in groups.values():
            self._gather(rules_of[positions[0]], np.asarray(positions, dtype=np.int64))
        for rule_rows in self._rules.values():
            rule_rows.seal()

    # ------------------------------------------------------------ unpacking

    def _rule_rows(self, rule: CompiledRule) -> _RuleRows:
        rule_rows = self._rules.get(rule.id)
        if rule_rows is None:
            rule_rows = self._rules[rule.id] = _RuleRows(rule)
        return rule_rows

    def _gather(self, rules: Sequence[CompiledRule], positions: Ints) -> None:
        device_ids = self.inputs.device_array[positions]
        index = np.asarray([self._index.get(int(d), -1) for d in device_ids], dtype=np.int64)
        fast = self._matches_layout(rules, index)
        if fast.any():
            self._gather_fast(rules, positions[fast], device_ids[fast], index[fast])
        for position, device_id, i in zip(
            positions[~fast].tolist(),
            device_ids[~fast].tolist(),
            index[~fast].tolist(),
            strict=True,
        ):
            self._gather_one(rules, position, device_id, i)

    def _matches_layout(self, rules: Sequence[CompiledRule], index: Ints) -> NDArray[np.bool_]:
        """Which devices' packed rows start with these rules, at these versions, in order."""
        packed = self.packed
        if not rules or not len(packed.floats):
            return np.zeros(len(index), dtype=bool)  # no rules: any row there needs a look
        found = index >= 0
        safe = np.where(found, index, 0)
        ok = found & (packed.lengths[safe] >= _width(rules))
        starts, offset = packed.starts[safe], 0
        for rule in rules:
            assert rule.columnar is not None
            header = (rule.id, rule.version, rule.columnar.width)
            for column, expected in zip((RULE_ID, VERSION, WIDTH), header, strict=True):
                ok &= packed.floats[np.where(ok, starts + offset + column, 0)] == expected
            offset += rule.columnar.width
        return ok

    def _gather_fast(
        self, rules: Sequence[CompiledRule], positions: Ints, device_ids: Ints, index: Ints
    ) -> None:
        packed, total = self.packed, _width(rules)
        old = packed.floats[packed.starts[index][:, None] + np.arange(total)]
        layout = {str(rule.id) for rule in rules}
        ids = device_ids.tolist()
        raw = {
            j: {rule: values for rule, values in packed.raw[d].items() if rule in layout}
            for j, d in enumerate(ids)
            if d in packed.raw
        }
        first_rows, offset = [], 0
        for rule in rules:
            assert rule.columnar is not None
            width = rule.columnar.width
            rule_rows = self._rule_rows(rule)
            first = rule_rows.add(positions, old[:, offset : offset + width].copy())
            first_rows.append(first)
            for j, values in raw.items():
                if str(rule.id) in values:
                    rule_rows.raw[first + j] = dict(values[str(rule.id)])
            offset += width
        tails: dict[int, int] = {}
        for j in np.flatnonzero(packed.lengths[index] > total).tolist():
            tails[j] = ids[j]
            start = int(packed.starts[index[j]])
            tail = unpack(packed.floats[start + total : start + int(packed.lengths[index[j]])])
            device_raw = packed.raw.get(ids[j], {})
            for segment in tail:
                segment.raw = dict(device_raw.get(str(segment.rule_id), {}))
            self._others[ids[j]] = [s for s in tail if s.rule_id in self._kept]
            self._loaded_segments[ids[j]] = len(tail)
        rule_ids = tuple(r.id for r in rules)
        self._fast.append(_FastGroup(rule_ids, device_ids, old, first_rows, raw, tails))

    def _gather_one(
        self, rules: Sequence[CompiledRule], position: int, device_id: int, index: int
    ) -> None:
        """A device whose packed row is missing or laid out otherwise (rules changed)."""
        segments = {s.rule_id: s for s in self.packed.segments(index)} if index >= 0 else {}
        self._loaded_segments[device_id] = len(segments)
        placed: list[tuple[_RuleRows, int]] = []
        for rule in rules:
            assert rule.columnar is not None
            segment = segments.pop(rule.id, None) or self._from_engine(rule, device_id)
            if segment is None:
                row, raw = rule.columnar.template.copy(), {}
            elif segment.version == rule.version and len(segment.row) == rule.columnar.width:
                row, raw = segment.row, segment.raw
            else:  # the rule changed: restart its conditions, keep whether it held
                row, raw = rule.columnar.restart(segment.row[None, :])[0], {}
            rule_rows = self._rule_rows(rule)
            first = rule_rows.add(np.asarray([position], dtype=np.int64), row[None, :])
            if raw:
                rule_rows.raw[first] = dict(raw)
            placed.append((rule_rows, first))
        self._rows_of[device_id] = placed
        self._others[device_id] = [s for s in segments.values() if s.rule_id in self._kept]

    def _from_engine(self, rule: CompiledRule, device_id: int) -> Segment | None:
        rs = self._engine_states.get((rule.id, device_id))
        if rs is None or rule.columnar is None:
            return None
        self.taken_from_engine.append((rule.id, device_id))
        return row_from_engine(rule.columnar, rule, rs)

    def take_for_engine(self, rule: CompiledRule, device_id: int) -> RuleState | None:
        """The state of a rule now run by the engine, if this store held it (it leaves here)."""
        others = self._others.get(device_id)
        if not others:
            return None
        for i, segment in enumerate(others):
            if segment.rule_id == rule.id:
                del others[i]
                rs = engine_view(rule, segment, device_id)
                rs.changed = True  # it leaves this store: the engine must write it
                return rs
        return None

    # ------------------------------------------------------------ evaluating

    def run(self) -> list[tuple[EdgeKey, Edge]]:
        """Advance every rule over the batch; the edges, keyed for ordering."""
        edges: list[tuple[EdgeKey, Edge]] = []
        for rule_rows in self._rules.values():
            edges.extend(self._run_rule(rule_rows))
        return edges

    def _run_rule(self, rule_rows: _RuleRows) -> list[tuple[EdgeKey, Edge]]:
        before = rule_rows.rows.copy()
        try:
            return self._advance_rule(rule_rows)
        except Exception as exc:  # a bug in one rule must not stop telemetry (logged)
            log.error(
                "rules.evaluation_failed", rule_id=rule_rows.rule.id, error_type=type(exc).__name__
            )
            rule_rows.rows = rule_rows.columnar.restart(before)
            rule_rows.raw = {}
            return []

    def _advance_rule(self, rule_rows: _RuleRows) -> list[tuple[EdgeKey, Edge]]:
        rule, columnar, inputs = rule_rows.rule, rule_rows.columnar, self.inputs
        counts = inputs.counts[rule_rows.positions]
        starts = inputs.starts[rule_rows.positions]
        columns = {m: inputs.column(m) for m in columnar.input_metrics}
        device_ids = inputs.device_array[rule_rows.positions]
        edges: list[tuple[EdgeKey, Edge]] = []
        for k in range(int(counts.max(initial=0))):
            rows_k = np.flatnonzero(counts > k)
            at = starts[rows_k] + k
            ts, fresh = inputs.ts[at], inputs.fresh[at]
            with np.errstate(invalid="ignore"):
                late = fresh & (ts < rule_rows.rows[rows_k, LAST_TS])
            if late.any():
                rows_k, at, ts, fresh = rows_k[~late], at[~late], ts[~late], fresh[~late]
            if not len(rows_k):
                continue
            step = Inputs(
                ts,
                fresh,
                {m: c.present[at] for m, c in columns.items()},
                {m: c.kinds[at] for m, c in columns.items()},
                {m: c.numbers[at] for m, c in columns.items()},
            )
            if len(rows_k) == len(rule_rows.rows):  # every device has a k-th input: in place
                triggered, cleared = columnar.advance(rule_rows.rows, step)
            else:
                rows = rule_rows.rows[rows_k]
                triggered, cleared = columnar.advance(rows, step)
                rule_rows.rows[rows_k] = rows
            self._keep_raw(rule_rows, rows_k, at, columns)
            for i in np.flatnonzero(triggered | cleared).tolist():
                row_index = int(rows_k[i])
                device_id = int(device_ids[row_index])
                row, raw = rule_rows.rows[row_index], rule_rows.raw.get(row_index, {})
                edge = _edge(rule, device_id, float(ts[i]), bool(triggered[i]), row, raw)
                edges.append(((device_id, rule.id, k), edge))
        return edges

    @staticmethod
    def _keep_raw(rule_rows: _RuleRows, rows_k: Ints, at: Ints, columns: Mapping[str, Any]) -> None:
        """Values a float cannot hold stay raw; a later value of another kind replaces them."""
        for metric in rule_rows.columnar.metrics:
            column = columns[metric]
            if not column.raw and not rule_rows.raw:
                continue  # the common case: only numbers and booleans, before and now
            present = column.present[at]
            for row_index, input_index in zip(
                rows_k[present].tolist(), at[present].tolist(), strict=True
            ):
                if input_index in column.raw:
                    rule_rows.raw.setdefault(row_index, {})[metric] = column.raw[input_index]
                elif (values := rule_rows.raw.get(row_index)) is not None:
                    values.pop(metric, None)
                    if not values:
                        del rule_rows.raw[row_index]

    # ------------------------------------------------------------ packing

    def writes(self) -> ColumnarWrites:
        """Packed rows that changed, and devices whose row is no longer needed."""
        writes = ColumnarWrites()
        for group in self._fast:
            self._write_group(group, writes)
        for device_id, placed in self._rows_of.items():
            segments = [
                Segment(rr.rule.id, rr.rule.version, rr.rows[i], rr.raw.get(i, {}))
                for rr, i in placed
            ]
            others = self._others[device_id]
            if not segments and len(others) == self._loaded_segments[device_id]:
                continue  # nothing evaluated here and nothing dropped: the row stays as it is
            writes.add(device_id, [*segments, *others])
        return writes

    def _write_group(self, group: _FastGroup, writes: ColumnarWrites) -> None:
        count = len(group.device_ids)
        placed = [
            (self._rules[r], first)
            for r, first in zip(group.rule_ids, group.first_rows, strict=True)
        ]
        new = np.hstack([rr.rows[first : first + count] for rr, first in placed])
        changed = np.any(new.view(np.uint64) != group.old.view(np.uint64), axis=1)
        raw: dict[int, dict[str, RawValues]] = defaultdict(dict)
        for rr, first in placed:
            for row_index, values in rr.raw.items():
                if first <= row_index < first + count and values:
                    raw[row_index - first][str(rr.rule.id)] = values
        for j in {*raw, *group.raw}:
            if raw.get(j, {}) != group.raw.get(j, {}):
                changed[j] = True
        device_ids = group.device_ids.tolist()
        for j, device_id in group.tails.items():  # rows with segments of other rules after
            others = self._others[device_id]
            if changed[j] or len(others) != self._loaded_segments[device_id]:
                segments = [
                    Segment(
                        rr.rule.id, rr.rule.version, rr.rows[first + j], rr.raw.get(first + j, {})
                    )
                    for rr, first in placed
                ]
                writes.add(device_id, [*segments, *others])
            changed[j] = False
        due_columns, offset = [], 0
        for rr, _ in placed:
            due_columns.append(offset + DUE_AT)
            offset += rr.columnar.width
        due = np.fmin.reduce(new[:, due_columns], axis=1)
        little_endian = new.astype("<f8", copy=False)
        for j in np.flatnonzero(changed).tolist():
            writes.device_ids.append(device_ids[j])
            writes.slots.append(little_endian[j].tobytes())
            writes.raw.append(json.dumps(raw[j]) if raw.get(j) else None)
            writes.due_at.append(float(due[j]))


def _width(rules: Sequence[CompiledRule]) -> int:
    return sum(rule.columnar.width for rule in rules if rule.columnar is not None)


def _edge(
    rule: CompiledRule, device_id: int, ts: float, trigger: bool, row: Floats, raw: RawValues
) -> Edge:
    """A trigger (with the moment's facts from the row's last-known values) or a clear."""
    if not trigger:
        return Edge("clear", rule, device_id, ts, {})
    facts: dict[str, Any] = {}
    moment, columnar = rule.spec.actions.moment, rule.columnar
    if moment is not None and columnar is not None:
        sources = [s for s in moment.facts_from.values() if s in columnar.value_columns]
        facts = rule.facts(columnar.values(row, raw, sources), {})
    return Edge("trigger", rule, device_id, ts, facts)


# ---------------------------------------------------------------- timers


def fire_timers(
    packed: PackedRows,
    rules_by_id: Mapping[int, CompiledRule],
    kept_rule_ids: Container[int],
    now: float,
) -> tuple[list[tuple[EdgeKey, Edge]], ColumnarWrites, int]:
    """Evaluate every rule whose timer is due by `now`, at its own due time (a tick).

    Timers of disabled rules and of rules the engine now runs are dropped (their state stays);
    a rule edited since its timer was set restarts its conditions instead of firing; segments
    of deleted rules are dropped. Returns the edges, the rows to write and how many timers
    were evaluated.
    """
    due: dict[int, list[tuple[int, Segment]]] = defaultdict(list)  # rule id → (device, segment)
    kept: dict[int, list[Segment]] = {}
    for index, device_id in enumerate(packed.device_ids.tolist()):
        kept[device_id] = []
        for segment in packed.segments(index):
            rule = rules_by_id.get(segment.rule_id)
            if rule is None and segment.rule_id not in kept_rule_ids:
                continue  # the rule was deleted
            kept[device_id].append(segment)
            if rule is None or rule.columnar is None:
                segment.row[DUE_AT] = np.nan  # disabled, or run by the engine now
            elif segment.version != rule.version or len(segment.row) != rule.columnar.width:
                restarted = rule.columnar.restart(segment.row[None, :])[0]
                segment.version, segment.row, segment.raw = rule.version, restarted, {}
            elif segment.row[DUE_AT] <= now:
                due[rule.id].append((device_id, segment))
    edges: list[tuple[EdgeKey, Edge]] = []
    evaluated = 0
    for rule_id, found in due.items():
        rule = rules_by_id[rule_id]
        edges.extend(_tick(rule, found))
        evaluated += len(found)
    writes = ColumnarWrites()
    for device_id, segments in kept.items():
        writes.add(device_id, segments)
    return edges, writes, evaluated


def _tick(rule: CompiledRule, found: list[tuple[int, Segment]]) -> list[tuple[EdgeKey, Edge]]:
    columnar = rule.columnar
    assert columnar is not None
    rows = np.stack([segment.row for _, segment in found])
    before = rows.copy()
    try:
        ts = rows[:, DUE_AT].copy()
        triggered, cleared = columnar.advance(rows, Inputs.ticks(ts))
    except Exception as exc:  # a bug in one rule must not stop the scheduler (logged)
        log.error("rules.evaluation_failed", rule_id=rule.id, error_type=type(exc).__name__)
        rows, triggered = columnar.restart(before), np.zeros(len(found), dtype=bool)
        cleared, ts = triggered, before[:, DUE_AT]
    edges = []
    for i, (device_id, segment) in enumerate(found):
        segment.row = rows[i]
        if triggered[i] or cleared[i]:
            edge = _edge(rule, device_id, float(ts[i]), bool(triggered[i]), rows[i], segment.raw)
            edges.append(((device_id, rule.id, 0), edge))
    return edges
