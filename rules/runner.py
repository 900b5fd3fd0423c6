"""Runs rules on stored batches and due timers; every effect goes in the caller's transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from ingest.records import StoredBatch
from rules import repo
from rules.batch import BatchInputs
from rules.columnar import ColumnarBatch, EdgeKey, engine_view, fire_timers
from rules.conditions import Input
from rules.engine import (
    CompiledRule,
    DeviceInfo,
    Edge,
    RuleState,
    adopt_version,
    compile_rule,
    evaluate,
    fresh_state,
)
from rules.models import RuleSpec

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
RuleList = tuple[CompiledRule, ...]


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunStats:
    """What one batch or timer sweep did.

    `claim_limit_reached` tells a timer sweep that more timers may be due (claim again).
    `rows_written` counts rule_states rows and packed device rows written (changed ones).
    """

    inputs: int = 0
    evaluations: int = 0
    triggers: int = 0
    clears: int = 0
    claim_limit_reached: bool = False
    rows_written: int = 0


class RuleSet:
    """Compiled live rules, indexed by scope, reloaded when the rules table changes."""

    def __init__(self) -> None:
        self._fingerprint: tuple[object, ...] | None = None
        self.by_id: dict[int, CompiledRule] = {}
        self.kept_ids: frozenset[int] = frozenset()  # rules not deleted, enabled or not
        self._by_model: dict[str, list[CompiledRule]] = defaultdict(list)
        self._by_device: dict[int, list[CompiledRule]] = defaultdict(list)
        self._by_customer: dict[int, list[CompiledRule]] = defaultdict(list)
        self._split: dict[tuple[Any, ...], tuple[RuleList, RuleList]] = {}

    def refresh(self, conn: repo.Conn) -> None:
        """Recompile when any rule changed since the last look."""
        fingerprint = repo.rules_fingerprint(conn)
        if fingerprint == self._fingerprint:
            return
        rows = repo.kept_rules(conn)
        self.load(rule for row in rows if row["enabled"] and (rule := _compile_row(row)))
        self.kept_ids = frozenset(row["id"] for row in rows)
        self._fingerprint = fingerprint
        log.info("rules.compiled", rules=len(self.by_id))

    def load(self, rules: Iterable[CompiledRule]) -> None:
        """Replace the compiled rules."""
        self.by_id = {}
        self._by_model, self._by_device, self._by_customer = (
            defaultdict(list),
            defaultdict(list),
            defaultdict(list),
        )
        self._split = {}
        for rule in rules:
            self.by_id[rule.id] = rule
            self.kept_ids |= {rule.id}
            if rule.scope_model_id is not None:
                self._by_model[rule.scope_model_id].append(rule)
            elif rule.scope_device_id is not None:
                self._by_device[rule.scope_device_id].append(rule)
            elif rule.scope_customer_id is not None:
                self._by_customer[rule.scope_customer_id].append(rule)

    def for_device(self, device: DeviceInfo) -> list[CompiledRule]:
        """The rules that apply to a device."""
        rules = [*self._by_model.get(device.model_id, ()), *self._by_device.get(device.id, ())]
        for customer_id in device.customer_ids:
            rules.extend(self._by_customer.get(customer_id, ()))
        return rules

    def split_for_device(self, device: DeviceInfo, columnar: bool) -> tuple[RuleList, RuleList]:
        """The rules of a device as (columnar ones by id, the engine's ones); `columnar=False`
        gives every rule to the engine. Devices with the same rules share the same tuples."""
        customers = frozenset(c for c in device.customer_ids if c in self._by_customer)
        own = device.id if device.id in self._by_device else None
        key = (device.model_id, own, customers, columnar)
        split = self._split.get(key)
        if split is None:
            rules = self.for_device(device)
            vectorized = [r for r in rules if columnar and r.columnar is not None]
            others = tuple(r for r in rules if not (columnar and r.columnar is not None))
            split = self._split[key] = (tuple(sorted(vectorized, key=_rule_id)), others)
        return split


def _compile_row(row: dict[str, Any]) -> CompiledRule | None:
    """A stored rule compiled, or None (logged) when it no longer validates: one bad row must
    not stop telemetry from being stored."""
    try:
        return compile_rule(
            int(row["id"]),
            int(row["version"]),
            RuleSpec.model_validate(row["spec"]),
            scope_model_id=row["scope_model_id"],
            scope_device_id=row["scope_device_id"],
            scope_customer_id=row["scope_customer_id"],
        )
    except ValueError as exc:  # pydantic.ValidationError included
        log.error("rules.rule_skipped", rule_id=row["id"], error_type=type(exc).__name__)
        return None


def safe_evaluate(rule: CompiledRule, rs: RuleState, inp: Input, device: DeviceInfo) -> Edge | None:
    """`evaluate`, but a failing rule restarts its conditions instead of failing the batch."""
    try:
        return evaluate(rule, rs, inp, device)
    except Exception as exc:  # a bug in one rule must not stop telemetry (logged, not raised)
        log.error(
            "rules.evaluation_failed",
            rule_id=rule.id,
            device_id=device.id,
            error_type=type(exc).__name__,
        )
        rs.state, rs.due_at, rs.changed = {"v": {}, "n": {}}, None, True
        return None


class RuleRunner:
    """Evaluates rules for batches (inside ingest's transaction) and for due timers.

    Rules whose conditions vectorize run in columnar form over all devices of a batch at once
    (rules/columnar.py), with their state packed per device; the others run through the
    per-device engine with one `rule_states` row per device and rule. `columnar=False` runs
    every rule through the engine (the reference the tests compare against).
    """

    def __init__(self, clock: Clock = utc_now, *, columnar: bool = True) -> None:
        self.clock = clock
        self.columnar = columnar
        self.rules = RuleSet()

    def process_batch(self, conn: repo.Conn, batch: StoredBatch) -> RunStats:
        """Evaluate every applicable rule on every input of the batch, per device in time order."""
        inputs = BatchInputs(batch)
        if not len(inputs):
            return RunStats()
        self.rules.refresh(conn)
        device_ids = inputs.device_ids
        infos = repo.device_infos(conn, device_ids)
        loaded = repo.lock_states(conn, device_ids)
        engine_rules: dict[int, RuleList] = {}
        columnar_rules: dict[int, RuleList] = {}
        for position, device_id in enumerate(device_ids):
            device = infos.get(device_id)
            if device is None:
                continue  # unknown to the registry: stored by ingest, no rules
            columnar_rules[position], engine_rules[position] = self.rules.split_for_device(
                device, self.columnar
            )
        states = dict(loaded.engine)
        columnar = ColumnarBatch(
            inputs, columnar_rules, loaded.columnar, loaded.engine, self.rules.kept_ids
        )
        edges: list[tuple[EdgeKey, Edge]] = []
        evaluations = 0
        for position, rules in engine_rules.items():
            if not rules:
                continue
            device_id = device_ids[position]
            device, device_inputs = infos[device_id], inputs.for_device(position)
            for rule in rules:
                rs = states.get((rule.id, device_id))
                if rs is None:
                    rs = columnar.take_for_engine(rule, device_id) or fresh_state(rule, device_id)
                    states[(rule.id, device_id)] = rs
                adopt_version(rule, rs)
                for index, inp in enumerate(device_inputs):
                    evaluations += 1
                    if (edge := safe_evaluate(rule, rs, inp, device)) is not None:
                        edges.append(((device_id, rule.id, index), edge))
        edges.extend(columnar.run())
        evaluations += sum(
            int(inputs.counts[position]) * len(rules) for position, rules in columnar_rules.items()
        )
        for pair in columnar.taken_from_engine:
            states.pop(pair, None)
        edges.sort(key=_edge_key)
        ordered = [edge for _, edge in edges]
        with conn.pipeline():  # no write waits for another: the server works while we build
            written = repo.save_states(conn, states.values())
            repo.delete_states(conn, columnar.taken_from_engine)
            written += repo.save_columnar(conn, columnar.writes())
            apply_edges(conn, ordered)
        log.debug("rules.batch", devices=len(device_ids), edges=len(ordered))
        return _stats(len(inputs), evaluations, ordered, rows_written=written)

    def fire_due(self, conn: repo.Conn, limit: int = 500) -> RunStats:
        """Fire timers due by the clock, each evaluated at its own due time; skip locked ones.

        Claims up to `limit` engine timers and up to `limit` packed device rows.
        """
        now = self.clock()
        due = repo.claim_due(conn, now, limit)
        packed = repo.claim_due_columnar(conn, now, limit)
        if not due and not len(packed.device_ids):
            return RunStats()
        self.rules.refresh(conn)
        edges: list[tuple[EdgeKey, Edge]] = []
        evaluated = 0
        infos = repo.device_infos(conn, sorted({rs.device_id for rs in due})) if due else {}
        for rs in due:
            rule, device = self.rules.by_id.get(rs.rule_id), infos.get(rs.device_id)
            if rule is None or device is None or rs.due_at is None:
                rs.due_at, rs.changed = None, True  # rule deleted or disabled: nothing to wake
                continue
            if rs.version != rule.version:
                adopt_version(rule, rs)  # the timer belonged to the old version: restart
                continue
            evaluated += 1
            if (edge := safe_evaluate(rule, rs, Input("tick", rs.due_at), device)) is not None:
                edges.append(((rs.device_id, rule.id, 0), edge))
        columnar_edges, writes, ticks = fire_timers(
            packed, self.rules.by_id, self.rules.kept_ids, now.timestamp()
        )
        edges.extend(columnar_edges)
        ordered = [edge for _, edge in sorted(edges, key=_edge_key)]
        with conn.pipeline():
            written = repo.save_states(conn, due) + repo.save_columnar(conn, writes)
            apply_edges(conn, ordered)
        claimed = len(due) + len(packed.device_ids)
        full = len(due) >= limit or len(packed.device_ids) >= limit
        return _stats(
            claimed, evaluated + ticks, ordered, claim_limit_reached=full, rows_written=written
        )


def stored_states(conn: repo.Conn, rules: RuleSet) -> dict[tuple[int, int], RuleState]:
    """Every stored rule state of both stores in the engine's form, by (rule id, device id).

    For inspection and for tests that compare the columnar path with the engine; a segment of
    a rule that `rules` does not hold (deleted, disabled) shows no condition state.
    """
    engine, packed = repo.all_states(conn)
    states = {(rs.rule_id, rs.device_id): rs for rs in engine}
    for index, device_id in enumerate(packed.device_ids.tolist()):
        for segment in packed.segments(index):
            rule = rules.by_id.get(segment.rule_id)
            states[(segment.rule_id, device_id)] = engine_view(rule, segment, device_id)
    return states


def _rule_id(rule: CompiledRule) -> int:
    return rule.id


def _edge_key(item: tuple[EdgeKey, Edge]) -> EdgeKey:
    return item[0]


def _stats(
    inputs: int,
    evaluations: int,
    edges: Sequence[Edge],
    *,
    claim_limit_reached: bool = False,
    rows_written: int = 0,
) -> RunStats:
    triggers = sum(edge.kind == "trigger" for edge in edges)
    clears = len(edges) - triggers
    return RunStats(inputs, evaluations, triggers, clears, claim_limit_reached, rows_written)


def dedup_key(edge: Edge) -> str:
    """The same edge always gets the same key, so redoing a transaction creates nothing twice."""
    return f"rule:{edge.rule.id}:{edge.device_id}:{repo.to_dt(edge.ts).isoformat()}"


def apply_edges(conn: repo.Conn, edges: Iterable[Edge]) -> None:
    """Turn edges into alerts, moments, operator notices and command intents.

    Edges go in waves: wave k holds the k-th edge of each (rule, device), so a rule that
    triggers, clears and triggers again within one batch opens, clears and opens in that
    order, while each wave writes all its effects with one statement per kind. No statement
    needs the previous one's result: callers send them in their pipeline with the state
    writes (a nested pipeline would wait for everything queued before it).
    """
    waves: list[list[Edge]] = []
    seen: dict[tuple[int, int], int] = defaultdict(int)
    for edge in edges:
        wave = seen[(edge.rule.id, edge.device_id)]
        seen[(edge.rule.id, edge.device_id)] += 1
        if wave == len(waves):
            waves.append([])
        waves[wave].append(edge)
    for wave_edges in waves:
        _apply_wave(conn, wave_edges)


def _apply_wave(conn: repo.Conn, edges: list[Edge]) -> None:
    openings: list[repo.AlertOpening] = []
    clearings: list[repo.AlertClearing] = []
    moments: list[repo.MomentRow] = []
    notices: list[repo.NoticeRow] = []
    intents: list[repo.IntentRow] = []
    for edge in edges:
        actions, at = edge.rule.spec.actions, repo.to_dt(edge.ts)
        rule_id, device_id = edge.rule.id, edge.device_id
        if edge.kind == "clear":
            if actions.alert is not None and actions.alert.auto_clear:
                clearings.append((rule_id, device_id, at))
            continue
        key = f"rule:{rule_id}:{device_id}:{at.isoformat()}"  # dedup_key(edge)
        if actions.alert is not None:
            openings.append((rule_id, device_id, actions.alert.severity, at, edge.facts, key))
        if actions.moment is not None:
            moment = actions.moment
            moments.append((device_id, moment.kind, moment.severity, at, edge.facts, rule_id, key))
        if actions.notify_operators is not None:
            severity = actions.alert.severity if actions.alert else "info"
            message = actions.notify_operators.message
            notices.append((device_id, rule_id, severity, message, at, key))
        if actions.command is not None:
            command = actions.command
            intents.append((device_id, rule_id, command.name, command.args, at, key))
    repo.open_alerts(conn, openings)
    repo.close_alerts(conn, clearings, reason="auto", actor="rules")
    repo.insert_moments(conn, moments)
    repo.insert_operator_notices(conn, notices)
    repo.insert_command_intents(conn, intents)
