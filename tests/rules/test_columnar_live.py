"""The live step with columnar rules makes exactly the engine's decisions, through PostgreSQL.

One random fleet timeline (several readings per device per batch, late readings, partial
readings, values of every type, events, timer sweeps, rule edits that move a rule between the
columnar form and the engine, a disabled and re-enabled rule, a deleted rule) is played twice
on two databases: once with every rule in the per-device engine, once with the columnar path
(or switching between the two half way, as a release or a rollback would). Alerts, their
history, moments, operator notices, command intents and the stored rule state must be equal.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from psycopg import Connection
from psycopg.rows import DictRow

from ingest.records import AcceptedEvent, AcceptedReading, StoredBatch
from rules import service
from rules.runner import RuleRunner, RuleSet, stored_states
from store.db import connect
from tests.conftest import create_database_from_template, drop_database
from tests.rules.conftest import T0, FakeClock

DEVICES = 14
STEPS = 34
STEP = timedelta(minutes=2)

RULES: list[dict[str, Any]] = [
    {
        "key": "c.warm",
        "when": {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}},
        "actions": {
            "alert": {"severity": "critical"},
            "moment": {
                "kind": "refrigerator.too_warm",
                "facts": {"minutes": 0},
                "facts_from": {"t": "fridge_temp_c", "door": "door_open"},
            },
        },
    },
    {
        "key": "c.door",
        "when": {
            "duration": {
                "for": "3m",
                "condition": {"state": {"metric": "door_open", "equals": True}},
            }
        },
        "actions": {
            "alert": {},
            "moment": {"kind": "refrigerator.door_left_open", "facts_from": {"t": "fridge_temp_c"}},
            "notify_operators": {"message": "door open"},
        },
    },
    {
        "key": "c.silent_or_open",
        "when": {
            "any": [
                {"state": {"metric": "door_open", "equals": True}},
                {"absence": {"after": "4m"}},
            ]
        },
        "actions": {"alert": {"severity": "info"}},
    },
    {
        "key": "c.power",
        "when": {
            "all": [
                {"threshold": {"metric": "power_w", "above": 300}},
                {"not": {"state": {"metric": "compressor_on", "equals": False}}},
            ]
        },
        "actions": {"alert": {}, "command": {"name": "quick_freeze"}},
    },
    {
        "key": "c.power_gap",
        "when": {"absence": {"after": "2m", "metric": "power_w"}},
        "actions": {"alert": {}},
    },
    {
        "key": "c.duty",
        "when": {"state": {"metric": "compressor_duty_pct", "one_of": [0, 100]}},
        "actions": {
            "moment": {"kind": "refrigerator.duty", "facts_from": {"duty": "compressor_duty_pct"}}
        },
    },
    {
        "key": "c.compressor",
        "when": {"state": {"metric": "compressor_on", "not_equals": True}},
        "actions": {"alert": {"auto_clear": False}},
    },
    {
        "key": "c.warm_for",
        "when": {
            "duration": {
                "for": "5m",
                "condition": {"threshold": {"metric": "fridge_temp_c", "above": 7}},
            }
        },
        "actions": {"alert": {}, "moment": {"kind": "refrigerator.warm_for"}},
    },
    {  # the per-device engine only
        "key": "e.rate",
        "when": {"rate": {"metric": "fridge_temp_c", "window": "10m", "above": 5}},
        "actions": {
            "alert": {},
            "moment": {"kind": "refrigerator.rising", "facts_from": {"r": "rate"}},
        },
    },
    {  # the per-device engine only (an event pulse)
        "key": "e.opened",
        "when": {"event": {"name": "door_opened"}},
        "actions": {"moment": {"kind": "refrigerator.opened"}},
    },
]
DEVICE_RULE = {  # scoped to two devices: their packed rows have one more rule than the others
    "key": "c.low_power",
    "when": {"threshold": {"metric": "power_w", "below": 150, "clear_above": 170}},
    "actions": {"alert": {}},
}
EDITS: dict[int, list[tuple[str, str, dict[str, Any] | None]]] = {
    # step → (rule key, what, new "when" or None)
    10: [
        (
            "c.warm",
            "update",
            {"threshold": {"metric": "fridge_temp_c", "above": 9, "clear_below": 5}},
        ),
        ("c.power_gap", "update", {"rate": {"metric": "power_w", "window": "6m", "below": -100}}),
    ],
    14: [("c.duty", "disable", None)],
    20: [("c.power_gap", "update", {"absence": {"after": "3m", "metric": "power_w"}})],
    22: [("c.duty", "enable", None)],
    26: [("c.compressor", "delete", None)],
}
TEMPERATURES: list[Any] = [4.0, 6.0, 7.0, 7.5, 8.5, 9, 12.0, 5, None, "warm", "off", True, 2**60]
POWERS: list[Any] = [100.0, 150, 160.0, 170.0, 400.0, 420]
DUTIES: list[Any] = [0, 0.0, 50.0, 100, 100.0, False]


@dataclass
class Step:
    """One batch (readings and events of several devices) and whether a sweep follows."""

    readings: list[tuple[int, datetime, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[int, datetime, str]] = field(default_factory=list)


def timeline(seed: int) -> list[Step]:
    """Random readings: 0-3 per device per step, some late, some partial, some odd values."""
    rng = random.Random(seed)
    steps = []
    for step in range(STEPS):
        batch = Step()
        start = T0 + step * STEP
        for device in range(DEVICES):
            if rng.random() < 0.15:
                continue  # silent this step
            for _ in range(rng.choice([1, 1, 2, 3])):
                at = start + timedelta(seconds=rng.randrange(0, 119))
                if rng.random() < 0.06:
                    at -= timedelta(minutes=10)  # late
                metrics = {
                    "fridge_temp_c": rng.choice(TEMPERATURES),
                    "door_open": rng.random() < 0.45 if rng.random() < 0.95 else 1,
                    "power_w": rng.choice(POWERS),
                    "compressor_on": rng.random() < 0.5,
                    "compressor_duty_pct": rng.choice(DUTIES),
                }
                for name in list(metrics):
                    if rng.random() < 0.2:
                        del metrics[name]
                batch.readings.append((device, at, metrics))
            if rng.random() < 0.08:
                batch.events.append(
                    (device, start + timedelta(seconds=rng.randrange(119)), "door_opened")
                )
        rng.shuffle(batch.readings)
        steps.append(batch)
    return steps


def _setup(url: str) -> dict[str, int]:
    with contextlib.closing(connect(url)) as conn, conn.transaction():
        conn.execute("INSERT INTO product_models (id, spec) VALUES ('refrigerator', '{}')")
        for i in range(DEVICES):
            conn.execute(
                "INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, 'refrigerator')",
                (f"fridge-{i}", f"serial-{i}"),
            )
        ids = {}
        for rule in RULES:
            spec = {"name": rule["key"], "scope": {"model": "refrigerator"}, **rule}
            ids[rule["key"]] = service.create_rule(conn, spec).id
        for uid in ("fridge-1", "fridge-2"):
            spec = {**DEVICE_RULE, "key": f"{DEVICE_RULE['key']}.{uid[-1]}", "name": "low"}
            ids[spec["key"]] = service.create_rule(conn, {**spec, "scope": {"device": uid}}).id
    return ids


def _edit(conn: Connection[DictRow], ids: dict[str, int], key: str, what: str, when: Any) -> None:
    rule = next(r for r in RULES if r["key"] == key)
    spec = {"name": key, "scope": {"model": "refrigerator"}, **rule}
    if what == "update":
        service.update_rule(conn, ids[key], {**spec, "when": when})
    elif what in ("disable", "enable"):
        current = service.get_rule(conn, ids[key]).spec.model_dump(by_alias=True, exclude_none=True)
        service.update_rule(conn, ids[key], {**current, "enabled": what == "enable"})
    else:
        service.delete_rule(conn, ids[key], actor="op", at=T0)


def play(url: str, steps: list[Step], columnar: list[bool]) -> dict[str, Any]:
    """Run the timeline; `columnar[step]` says which path the runner takes at each step (a
    new runner, as after a restart, whenever it changes). Returns everything rules wrote."""
    ids = _setup(url)
    clock = FakeClock(T0)
    runner = RuleRunner(clock, columnar=columnar[0])
    seqs = [0] * DEVICES
    with contextlib.closing(connect(url)) as conn:
        conn.commit()
        for number, step in enumerate(steps):
            if columnar[number] != runner.columnar:
                runner = RuleRunner(clock, columnar=columnar[number])
            for key, what, when in EDITS.get(number, []):
                with conn.transaction():
                    _edit(conn, ids, key, what, when)
            readings, events = [], []
            for device, at, metrics in step.readings:
                seqs[device] += 1
                uid = f"fridge-{device}"
                readings.append(
                    AcceptedReading(device + 1, uid, "refrigerator", seqs[device], at, at, metrics)
                )
            for device, at, name in step.events:
                seqs[device] += 1
                uid = f"fridge-{device}"
                events.append(
                    AcceptedEvent(device + 1, uid, "refrigerator", seqs[device], at, at, name)
                )
            with conn.transaction():
                runner.process_batch(conn, StoredBatch(readings, events))
            clock.now = T0 + (number + 1) * STEP
            with conn.transaction():
                assert not runner.fire_due(conn, limit=10_000).claim_limit_reached
        return outcome(conn)


def outcome(conn: Connection[DictRow]) -> dict[str, Any]:
    """Alerts, history, moments, notices, intents and the state of every rule still kept."""
    queries = {
        "alerts": "SELECT a.device_id, r.key, a.severity, a.status, a.opened_at, a.cleared_at,"
        " a.clear_reason, a.facts FROM alerts a JOIN rules r ON r.id = a.rule_id ORDER BY 1, 2, 5",
        "history": "SELECT a.device_id, a.rule_id, h.at, h.from_status, h.to_status, h.actor"
        " FROM alert_history h JOIN alerts a ON a.id = h.alert_id ORDER BY 1, 2, 3, 5",
        "moments": "SELECT m.device_id, m.kind, m.severity, m.occurred_at, m.facts, m.rule_id,"
        " a.dedup_key AS alert FROM moments m LEFT JOIN alerts a ON a.id = m.alert_id"
        " ORDER BY 1, 2, 4",
        "notices": "SELECT n.device_id, n.rule_id, n.message, n.occurred_at, a.dedup_key AS alert"
        " FROM operator_notifications n LEFT JOIN alerts a ON a.id = n.alert_id ORDER BY 1, 2, 4",
        "intents": "SELECT device_id, rule_id, name, args, occurred_at FROM rule_command_intents"
        " ORDER BY 1, 2, 5",
    }
    result: dict[str, Any] = {
        name: [dict(row) for row in conn.execute(sql).fetchall()] for name, sql in queries.items()
    }
    rules = RuleSet()
    rules.refresh(conn)
    states = {}
    for (rule_id, device_id), rs in stored_states(conn, rules).items():
        rule = rules.by_id.get(rule_id)
        if rule_id not in rules.kept_ids:
            continue  # a deleted rule (the columnar store drops it on the device's next write)
        current = rule is not None and rs.version == rule.version
        state = rs.state if current else None  # an older version's conditions restart anyway
        states[(rule_id, device_id)] = (rs.version, rs.holding, rs.last_ts, rs.due_at, state)
    result["states"] = states
    conn.commit()
    return result


@pytest.fixture
def second_url(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    """A second fresh database, for the run the first is compared with."""
    url = create_database_from_template(postgres_admin_url, template_database)
    try:
        yield url
    finally:
        drop_database(postgres_admin_url, url)


HALF = STEPS // 2
MODES = {
    "columnar": [True] * STEPS,
    "release": [False] * HALF + [True] * (STEPS - HALF),  # engine state taken over mid-window
    "rollback": [True] * HALF + [False] * (STEPS - HALF),
}


@pytest.mark.parametrize(
    ("mode", "seed"), [("columnar", 1), ("columnar", 2), ("release", 3), ("rollback", 4)]
)
def test_the_columnar_path_decides_exactly_like_the_engine(
    database_url: str, second_url: str, mode: str, seed: int
) -> None:
    steps = timeline(seed)
    expected = play(database_url, steps, [False] * STEPS)
    assert len(expected["alerts"]) > 60 and len(expected["moments"]) > 60  # a lot happens
    assert any(a["key"] == "c.power_gap" for a in expected["alerts"])  # fired by sweeps
    facts = [m["facts"].get("t") for m in expected["moments"]]
    assert any(isinstance(t, str) for t in facts) and 2**60 in facts  # values kept raw
    actual = play(second_url, steps, MODES[mode])
    for name in ("alerts", "history", "moments", "notices", "intents"):
        assert actual[name] == expected[name], name
    assert actual["states"].keys() == expected["states"].keys()
    differing = {k for k in expected["states"] if actual["states"][k] != expected["states"][k]}
    assert not differing, {
        k: (expected["states"][k], actual["states"][k]) for k in sorted(differing)[:3]
    }
