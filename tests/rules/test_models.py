"""Rule specs: what is accepted, and precise errors (field path + reason) for what is not."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from psycopg import Connection
from psycopg.rows import DictRow

from rules import service
from rules.errors import InvalidRuleSpec, RuleConflict
from rules.models import parse_duration, parse_rule_spec

BASE: dict[str, Any] = {
    "key": "t.rule",
    "name": "Rule",
    "scope": {"model": "ev"},
    "actions": {"alert": {}},
}


def problems(when: Any = None, **overrides: Any) -> list[dict[str, str]]:
    spec = {**BASE, **overrides}
    if when is not None:
        spec["when"] = when
    with pytest.raises(InvalidRuleSpec) as caught:
        parse_rule_spec(spec)
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("2 hours", 7200), ("30s", 30), (90, 90), ("1.5h", 5400), ("1 day", 86400)],
)
def test_durations(text: Any, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["soon", "-5m", 0, True, "5 fortnights"])
def test_bad_durations(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_errors_name_the_field_path_and_reason() -> None:
    found = problems(
        {
            "all": [
                {"threshold": {"metric": "soc_pct", "above": 5, "clear_below": 7}},
                {
                    "duration": {
                        "for": "soon",
                        "condition": {"state": {"metric": "locked", "equals": True}},
                    }
                },
                {"thresold": {"metric": "soc_pct", "above": 5}},
                {"window": {"start": "25:00", "end": "06:00"}},
                {"geofence": {"polygon": [[35, 139], [35, 140]]}},
            ]
        }
    )
    paths = {p["path"]: p["reason"] for p in found}
    assert paths["when.all.0.threshold"] == "'clear_below' must not be greater than 'above'"
    assert paths["when.all.1.duration.for"].startswith("expected a duration")
    assert "exactly one key" in paths["when.all.2"]
    assert paths["when.all.3.window.start"].startswith("Input should be in a valid time format")
    assert paths["when.all.4.geofence.polygon"] == "a polygon needs at least 3 [lat, lon] points"


@pytest.mark.parametrize(
    ("spec", "path", "reason"),
    [
        ({"actions": {}}, "actions", "give at least one action"),
        ({"scope": {"model": "ev", "device": "x"}}, "scope", "exactly one of"),
        ({"key": "Bad Key"}, "key", "String should match pattern"),
        ({"actions": {"moment": {"kind": "nodot"}}}, "actions.moment.kind", "String should match"),
        (
            {"actions": {"alert": {"severity": "panic"}}},
            "actions.alert.severity",
            "Input should be",
        ),
        ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ],
)
def test_other_errors(spec: dict[str, Any], path: str, reason: str) -> None:
    found = problems({"state": {"metric": "locked", "equals": True}}, **spec)
    assert any(p["path"] == path and reason in p["reason"] for p in found), found


def test_condition_level_checks() -> None:
    assert (
        problems({"threshold": {"metric": "soc_pct"}})[0]["reason"]
        == "give exactly one of 'above' or 'below'"
    )
    assert (
        "exactly one of 'equals'"
        in problems({"state": {"metric": "x", "equals": 1, "one_of": [1]}})[0]["reason"]
    )
    assert (
        "unknown time zone"
        in problems({"window": {"start": "01:00", "end": "02:00", "time_zone": "Mars/Base"}})[0][
            "reason"
        ]
    )
    assert (
        "'min_history' must not exceed"
        in problems({"anomaly": {"metric": "x", "history": 10, "min_history": 20}})[0]["reason"]
    )


def test_round_trip_through_json_keeps_the_spec() -> None:
    spec = parse_rule_spec(
        {**BASE, "when": {"duration": {"for": "15m", "condition": {"absence": {"after": "1h"}}}}}
    )
    assert parse_rule_spec(spec.model_dump(mode="json", by_alias=True)) == spec


def test_rules_are_checked_against_the_product_model(db: Connection[DictRow]) -> None:
    spec = {
        **BASE,
        "when": {
            "all": [
                {"threshold": {"metric": "soc_percent", "below": 5}},
                {"event": {"name": "exploded"}},
            ]
        },
        "actions": {
            "moment": {"kind": "ev.x", "facts_from": {"a": "nope"}},
            "command": {"name": "fly"},
        },
    }
    with pytest.raises(InvalidRuleSpec) as caught:
        service.create_rule(db, spec)
    assert caught.value.problems == [
        {"path": "when.all.0.threshold.metric", "reason": "unknown metric 'soc_percent' for ev"},
        {"path": "when.all.1.event.name", "reason": "unknown event 'exploded' for ev"},
        {
            "path": "actions.moment.facts_from.a",
            "reason": "'nope' is neither a metric of ev nor one of median, rate, z",
        },
        {"path": "actions.command.name", "reason": "unknown command 'fly'"},
    ]


def test_unknown_scope_targets_and_duplicate_keys(db: Connection[DictRow]) -> None:
    when = {"state": {"metric": "locked", "equals": False}}
    for scope, path in [
        ({"model": "toaster"}, "scope.model"),
        ({"device": "nope"}, "scope.device"),
        ({"customer": "not-a-uuid"}, "scope.customer"),
    ]:
        with pytest.raises(InvalidRuleSpec) as caught:
            service.create_rule(db, {**BASE, "when": when, "scope": scope})
        assert caught.value.problems[0]["path"] == path
    service.create_rule(db, {**BASE, "when": when})
    with pytest.raises(RuleConflict):
        service.create_rule(db, {**BASE, "when": when})


def test_command_arguments_are_checked_against_the_model(db: Connection[DictRow]) -> None:
    spec = {
        **BASE,
        "when": {"state": {"metric": "locked", "equals": False}},
        "actions": {"command": {"name": "set_charge_limit", "args": {"limit_pct": 20}}},
    }
    with pytest.raises(InvalidRuleSpec) as caught:
        service.create_rule(db, spec)
    assert caught.value.problems == [
        {"path": "actions.command.args", "reason": "limit_pct: below minimum 50"}
    ]
