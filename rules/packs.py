"""Built-in rule packs (rules/rule_packs/<model>.yaml) and checks of rules against models."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from devices.catalog import ProductModel
from devices.commands import check_command
from devices.errors import InvalidRequest
from devices.models import CommandCreate
from rules.errors import InvalidRuleSpec
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
    RulePack,
    RuleSpec,
    StateCondition,
    ThresholdCondition,
    describe_errors,
)

# Names a moment's facts_from may use besides metrics: what conditions observe.
OBSERVATIONS = frozenset({"rate", "median", "z"})


def load_pack_file(path: Path) -> RulePack:
    """Read and validate one rule pack file."""
    try:
        return RulePack.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except ValidationError as exc:
        raise InvalidRuleSpec(describe_errors(exc)) from None


@cache
def builtin_packs() -> dict[str, RulePack]:
    """The rule packs shipped with Kizuna, by product model id."""
    folder = Path(str(resources.files("rules"))) / "rule_packs"
    packs = [load_pack_file(path) for path in sorted(folder.glob("*.yaml"))]
    return {pack.model: pack for pack in packs}


def _walk(condition: Condition, path: str) -> Iterator[tuple[str, str, str]]:
    """(path, 'metric' | 'event', name) for every metric and event a condition names."""
    if isinstance(condition, AllCondition | AnyCondition):
        tag = "all" if isinstance(condition, AllCondition) else "any"
        children = condition.all if isinstance(condition, AllCondition) else condition.any
        for i, child in enumerate(children):
            yield from _walk(child, f"{path}.{tag}.{i}")
    elif isinstance(condition, NotCondition):
        yield from _walk(condition.not_, f"{path}.not")
    elif isinstance(condition, DurationCondition):
        yield from _walk(condition.duration.condition, f"{path}.duration.condition")
    elif isinstance(condition, EventCondition):
        yield f"{path}.event.name", "event", condition.event.name
    elif isinstance(condition, GeofenceCondition):
        yield f"{path}.geofence.lat_metric", "metric", condition.geofence.lat_metric
        yield f"{path}.geofence.lon_metric", "metric", condition.geofence.lon_metric
    elif isinstance(condition, AbsenceCondition):
        if condition.absence.metric is not None:
            yield f"{path}.absence.metric", "metric", condition.absence.metric
    else:
        for tag, cls in (
            ("threshold", ThresholdCondition),
            ("state", StateCondition),
            ("rate", RateCondition),
            ("anomaly", AnomalyCondition),
        ):
            if isinstance(condition, cls):
                yield f"{path}.{tag}.metric", "metric", getattr(condition, tag).metric


def model_problems(spec: RuleSpec, model: ProductModel) -> list[dict[str, str]]:
    """Every metric, event, command or fact source the rule names that the model lacks."""
    problems = []
    for path, what, name in _walk(spec.when, "when"):
        known: Any = model.metrics if what == "metric" else model.events
        if name not in known:
            problems.append({"path": path, "reason": f"unknown {what} {name!r} for {model.id}"})
    moment = spec.actions.moment
    for fact, source in moment.facts_from.items() if moment else ():
        if source not in model.metrics and source not in OBSERVATIONS:
            problems.append(
                {
                    "path": f"actions.moment.facts_from.{fact}",
                    "reason": f"{source!r} is neither a metric of {model.id} nor one of "
                    + ", ".join(sorted(OBSERVATIONS)),
                }
            )
    command = spec.actions.command
    if command is not None and command.name not in model.commands:
        problems.append(
            {"path": "actions.command.name", "reason": f"unknown command {command.name!r}"}
        )
    elif command is not None:
        try:
            check_command(model, CommandCreate.model_validate(command.model_dump()))
        except (InvalidRequest, ValidationError) as exc:
            problems.append({"path": "actions.command.args", "reason": str(exc)})
    return problems
