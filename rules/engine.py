"""The evaluation engine: compiled rules, per-device rule state, and the edges they produce.

Pure computation: no SQL here. `evaluate` advances one rule for one device by one input and
returns a trigger or clear `Edge` when the rule starts or stops holding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from rules.conditions import (
    UTC,
    Context,
    Evaluator,
    Input,
    compile_condition,
    only_events,
    referenced_metrics,
)
from rules.models import RuleSpec
from rules.vector import ColumnarRule, NotVectorizable


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate: its spec, its evaluator tree and what it reads.

    `columnar` is the same condition in columnar form when every part of it vectorizes
    (rules/vector.py); the live step then evaluates the rule with it, many devices at once.
    """

    id: int
    version: int
    spec: RuleSpec
    root: Evaluator
    metrics: frozenset[str]
    stateless: bool
    scope_model_id: str | None = None
    scope_device_id: int | None = None
    scope_customer_id: int | None = None
    columnar: ColumnarRule | None = None

    def facts(self, values: dict[str, Any], observations: dict[str, Any]) -> dict[str, Any]:
        """The moment's facts: literals, then named observations or last-known metric values."""
        moment = self.spec.actions.moment
        if moment is None:
            return {}
        facts: dict[str, Any] = dict(moment.facts)
        for name, source in moment.facts_from.items():
            facts[name] = observations[source] if source in observations else values.get(source)
        return facts


def compile_rule(
    rule_id: int,
    version: int,
    spec: RuleSpec,
    *,
    scope_model_id: str | None = None,
    scope_device_id: int | None = None,
    scope_customer_id: int | None = None,
) -> CompiledRule:
    """Compile a validated spec once; evaluation then never looks at the spec's shape again."""
    metrics = set(referenced_metrics(spec.when))
    if spec.actions.moment is not None:
        metrics.update(spec.actions.moment.facts_from.values())
    try:
        columnar: ColumnarRule | None = ColumnarRule(spec.when, metrics, rule_id, version)
    except NotVectorizable:
        columnar = None
    return CompiledRule(
        id=rule_id,
        version=version,
        spec=spec,
        root=compile_condition(spec.when),
        metrics=frozenset(metrics),
        stateless=only_events(spec.when),
        scope_model_id=scope_model_id,
        scope_device_id=scope_device_id,
        scope_customer_id=scope_customer_id,
        columnar=columnar,
    )


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What rules need to know about a device besides its telemetry."""

    id: int
    model_id: str
    home: tuple[float, float] | None = None
    zone: ZoneInfo = UTC
    customer_ids: frozenset[int] = frozenset()

    def in_scope(self, rule: CompiledRule) -> bool:
        """True when the rule applies to this device."""
        if rule.scope_model_id is not None:
            return rule.scope_model_id == self.model_id
        if rule.scope_device_id is not None:
            return rule.scope_device_id == self.id
        return rule.scope_customer_id in self.customer_ids


@dataclass(slots=True)
class RuleState:
    """One rule's state for one device, as stored in rule_states."""

    rule_id: int
    device_id: int
    version: int
    state: dict[str, Any] = field(default_factory=dict)
    holding: bool = False
    last_ts: float | None = None
    due_at: float | None = None
    stored: bool = False
    changed: bool = False
    snapshot: tuple[Any, ...] | None = None  # the stored values as loaded (write only changes)


@dataclass(frozen=True, slots=True)
class Edge:
    """The rule started (trigger) or stopped (clear) holding for a device at device time `ts`."""

    kind: Literal["trigger", "clear"]
    rule: CompiledRule
    device_id: int
    ts: float
    facts: dict[str, Any]


def fresh_state(rule: CompiledRule, device_id: int) -> RuleState:
    """The state of a rule that has never seen the device."""
    return RuleState(rule.id, device_id, rule.version, {"v": {}, "n": {}})


def adopt_version(rule: CompiledRule, rs: RuleState) -> None:
    """After a rule changes, restart its conditions but keep whether it was holding."""
    if rs.version != rule.version:
        rs.version, rs.state, rs.due_at, rs.changed = rule.version, {"v": {}, "n": {}}, None, True


def evaluate(rule: CompiledRule, rs: RuleState, inp: Input, device: DeviceInfo) -> Edge | None:
    """Advance one rule for one device by one input; return the edge it produced, if any."""
    late = inp.kind != "tick" and rs.last_ts is not None and inp.ts < rs.last_ts
    if late and not rule.stateless:
        return None  # older than what this rule has already decided on
    values: dict[str, Any] = rs.state.setdefault("v", {})
    for name in rule.metrics.intersection(inp.metrics):
        values[name] = inp.metrics[name]
    ctx = Context(values, device.home, device.zone)
    holds, wake = rule.root.step(rs.state.setdefault("n", {}), inp, ctx)
    edge = None
    if holds and not rs.holding:
        edge = Edge("trigger", rule, device.id, inp.ts, rule.facts(values, ctx.observations))
    elif rs.holding and not holds:
        edge = Edge("clear", rule, device.id, inp.ts, {})
    rs.holding, rs.due_at, rs.changed = holds, wake, True
    if inp.kind != "tick":
        rs.last_ts = inp.ts if rs.last_ts is None else max(rs.last_ts, inp.ts)
    return edge
