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


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunStats:
    """What one batch or timer sweep did."""

    inputs: int = 0
    evaluations: int = 0
    triggers: int = 0
    clears: int = 0


class RuleSet:
    """Compiled live rules, indexed by scope, reloaded when the rules table changes."""

    def __init__(self) -> None:
        self._fingerprint: tuple[object, ...] | None = None
        self.by_id: dict[int, CompiledRule] = {}
        self._by_model: dict[str, list[CompiledRule]] = defaultdict(list)
        self._by_device: dict[int, list[CompiledRule]] = defaultdict(list)
        self._by_customer: dict[int, list[CompiledRule]] = defaultdict(list)

    def refresh(self, conn: repo.Conn) -> None:
        """Recompile when any rule changed since the last look."""
        fingerprint = repo.rules_fingerprint(conn)
        if fingerprint == self._fingerprint:
            return
        compiled = [rule for row in repo.live_rules(conn) if (rule := _compile_row(row))]
        self.load(compiled)
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
        for rule in rules:
            self.by_id[rule.id] = rule
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


def batch_inputs(batch: StoredBatch) -> dict[int, list[Input]]:
    """Readings and events of a batch as inputs per device, in device-time order."""
    keyed: dict[int, list[tuple[float, int, Input]]] = defaultdict(list)
    for r in batch.readings:
        ts = r.ts.timestamp()
        keyed[r.device_id].append((ts, r.seq, Input("reading", ts, r.metrics)))
    for e in batch.events:
        ts = e.ts.timestamp()
        keyed[e.device_id].append((ts, e.seq, Input("event", ts, {}, e.event, e.data)))
    return {
        device_id: [inp for _, _, inp in sorted(items, key=lambda item: (item[0], item[1]))]
        for device_id, items in keyed.items()
    }


class RuleRunner:
    """Evaluates rules for batches (inside ingest's transaction) and for due timers."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self.clock = clock
        self.rules = RuleSet()

    def process_batch(self, conn: repo.Conn, batch: StoredBatch) -> RunStats:
        """Evaluate every applicable rule on every input of the batch, per device in time order."""
        per_device = batch_inputs(batch)
        if not per_device:
            return RunStats()
        self.rules.refresh(conn)
        device_ids = sorted(per_device)
        infos = repo.device_infos(conn, device_ids)
        states = repo.lock_states(conn, device_ids)
        edges: list[Edge] = []
        evaluations = 0
        for device_id in device_ids:
            device = infos.get(device_id)
            if device is None:
                continue
            for rule in self.rules.for_device(device):
                rs = states.get((rule.id, device_id))
                if rs is None:
                    rs = states[(rule.id, device_id)] = fresh_state(rule, device_id)
                adopt_version(rule, rs)
                for inp in per_device[device_id]:
                    evaluations += 1
                    if (edge := safe_evaluate(rule, rs, inp, device)) is not None:
                        edges.append(edge)
        repo.save_states(conn, states.values())
        apply_edges(conn, edges)
        log.debug("rules.batch", devices=len(device_ids), edges=len(edges))
        return _stats(sum(len(v) for v in per_device.values()), evaluations, edges)

    def fire_due(self, conn: repo.Conn, limit: int = 500) -> RunStats:
        """Fire timers due by the clock, each evaluated at its own due time; skip locked ones."""
        due = repo.claim_due(conn, self.clock(), limit)
        if not due:
            return RunStats()
        self.rules.refresh(conn)
        infos = repo.device_infos(conn, sorted({rs.device_id for rs in due}))
        edges: list[Edge] = []
        for rs in due:
            rule, device = self.rules.by_id.get(rs.rule_id), infos.get(rs.device_id)
            if rule is None or device is None or rs.due_at is None:
                rs.due_at, rs.changed = None, True  # rule deleted or disabled: nothing to wake
                continue
            adopt_version(rule, rs)
            if (edge := safe_evaluate(rule, rs, Input("tick", rs.due_at), device)) is not None:
                edges.append(edge)
        repo.save_states(conn, due)
        apply_edges(conn, edges)
        return _stats(len(due), len(due), edges)


def _stats(inputs: int, evaluations: int, edges: Sequence[Edge]) -> RunStats:
    triggers = sum(edge.kind == "trigger" for edge in edges)
    return RunStats(inputs, evaluations, triggers, len(edges) - triggers)


def dedup_key(edge: Edge) -> str:
    """The same edge always gets the same key, so redoing a transaction creates nothing twice."""
    return f"rule:{edge.rule.id}:{edge.device_id}:{repo.to_dt(edge.ts).isoformat()}"


def apply_edges(conn: repo.Conn, edges: Iterable[Edge]) -> None:
    """Turn edges into alerts, moments, operator notices and command intents, in edge order.

    Every statement is independent of the previous one's result, so they go to the server in
    one pipeline instead of one round trip each.
    """
    with conn.pipeline():
        for edge in edges:
            if edge.kind == "trigger":
                _trigger(conn, edge)
            else:
                _clear(conn, edge)


def _trigger(conn: repo.Conn, edge: Edge) -> None:
    actions, at, key = edge.rule.spec.actions, repo.to_dt(edge.ts), dedup_key(edge)
    ids = {"rule_id": edge.rule.id, "device_id": edge.device_id}
    if actions.alert is not None:
        severity = actions.alert.severity
        repo.open_alert(conn, **ids, severity=severity, at=at, facts=edge.facts, dedup_key=key)
    if actions.moment is not None:
        moment = actions.moment
        repo.insert_moment(
            conn,
            **ids,
            kind=moment.kind,
            severity=moment.severity,
            at=at,
            facts=edge.facts,
            dedup_key=key,
        )
    if actions.notify_operators is not None:
        repo.insert_operator_notice(
            conn,
            **ids,
            severity=actions.alert.severity if actions.alert else "info",
            message=actions.notify_operators.message,
            at=at,
            dedup_key=key,
        )
    if actions.command is not None:
        command = actions.command
        repo.insert_command_intent(
            conn, **ids, name=command.name, args=command.args, at=at, dedup_key=key
        )


def _clear(conn: repo.Conn, edge: Edge) -> None:
    alert = edge.rule.spec.actions.alert
    if alert is None or not alert.auto_clear:
        return
    repo.close_open_alert(
        conn,
        rule_id=edge.rule.id,
        device_id=edge.device_id,
        at=repo.to_dt(edge.ts),
        reason="auto",
        actor="rules",
    )
