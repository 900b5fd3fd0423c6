"""The columnar fleet evaluator makes exactly the decisions of the per-device engine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rules.conditions import Input
from rules.engine import DeviceInfo, compile_rule, evaluate, fresh_state
from rules.models import parse_rule_spec
from rules.vector import (
    BIG_INT,
    BOOL,
    FLOAT,
    HEADER,
    HOLDING,
    INT,
    NULL,
    OTHER,
    FleetEvaluator,
    Inputs,
    NotVectorizable,
    Round,
    decode_value,
    encode_value,
    needs_raw,
)

BOOLEANS = frozenset({"door_open", "compressor_on"})
WHENS = [
    {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}},
    {"threshold": {"metric": "power_w", "below": 150, "clear_above": 170}},
    {"state": {"metric": "door_open", "equals": True}},
    {"duration": {"for": "3m", "condition": {"state": {"metric": "door_open", "equals": True}}}},
    {
        "duration": {
            "for": "5m",
            "condition": {"threshold": {"metric": "fridge_temp_c", "above": 7}},
        }
    },
    {
        "all": [
            {"threshold": {"metric": "power_w", "above": 300}},
            {"not": {"state": {"metric": "compressor_on", "equals": False}}},
        ]
    },
    {"any": [{"state": {"metric": "door_open", "equals": True}}, {"absence": {"after": "4m"}}]},
    {"absence": {"after": "2m", "metric": "power_w"}},
    {"state": {"metric": "compressor_duty_pct", "one_of": [0, 100]}},
    {"state": {"metric": "compressor_on", "not_equals": True}},
]


def _specs() -> list:
    return [
        parse_rule_spec(
            {
                "key": f"v.r{i}",
                "name": "n",
                "scope": {"model": "refrigerator"},
                "when": w,
                "actions": {"alert": {}},
            }
        )
        for i, w in enumerate(WHENS)
    ]


def _timeline(rng: np.random.Generator, devices: int, rounds: int) -> list[Round]:
    result = []
    clock = np.full(devices, 1.0e9)
    for _ in range(rounds):
        clock = clock + rng.choice([30.0, 60.0, 90.0, 240.0], size=devices)
        ts = clock.copy()
        ts[rng.random(devices) < 0.1] = np.nan  # silent this round
        late = rng.random(devices) < 0.05
        ts[late] = ts[late] - 600  # late readings
        metrics = {
            "fridge_temp_c": rng.choice([4.0, 6.0, 7.0, 7.5, 8.0, 9.0], size=devices),
            "power_w": rng.choice([100.0, 150.0, 160.0, 170.0, 400.0], size=devices),
            "door_open": (rng.random(devices) < 0.4).astype(float),
            "compressor_on": (rng.random(devices) < 0.5).astype(float),
            "compressor_duty_pct": rng.choice([0.0, 50.0, 100.0], size=devices),
        }
        for column in metrics.values():
            column[rng.random(devices) < 0.2] = np.nan  # metric missing from the reading
        result.append(Round(ts, metrics, BOOLEANS))
    return result


def _scalar_input(batch: Round, i: int) -> Input | None:
    if np.isnan(batch.ts[i]):
        return None
    metrics: dict[str, object] = {}
    for name, column in batch.metrics.items():
        if not np.isnan(column[i]):
            boolean = name in BOOLEANS
            metrics[name] = bool(column[i]) if boolean else float(column[i])
    return Input("reading", float(batch.ts[i]), metrics)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fleet_evaluator_matches_the_engine_edge_for_edge(seed: int) -> None:
    devices, specs = 60, _specs()
    timeline = _timeline(np.random.default_rng(seed), devices, 40)
    fleet = FleetEvaluator([s.when for s in specs], devices)
    rules = [compile_rule(i, 1, s) for i, s in enumerate(specs)]
    states = {(r.id, d): fresh_state(r, d) for r in rules for d in range(devices)}
    vector_edges, scalar_edges = set(), set()
    for step, batch in enumerate(timeline):
        for edges in fleet.step(batch):
            vector_edges |= {(step, edges.rule_index, int(d), "trigger") for d in edges.triggered}
            vector_edges |= {(step, edges.rule_index, int(d), "clear") for d in edges.cleared}
        for d in range(devices):
            inp = _scalar_input(batch, d)
            if inp is None:
                continue
            for rule in rules:
                edge = evaluate(rule, states[(rule.id, d)], inp, DeviceInfo(d, "refrigerator"))
                if edge is not None:
                    scalar_edges.add((step, rule.id, d, edge.kind))
    assert len(scalar_edges) > 200
    assert vector_edges == scalar_edges
    for rule in rules:
        holding = [states[(rule.id, d)].holding for d in range(devices)]
        assert fleet.holding[rule.id].tolist() == holding
        due = [states[(rule.id, d)].due_at for d in range(devices)]
        assert [None if np.isnan(x) else float(x) for x in fleet.due[rule.id]] == due
        columnar, rows = fleet.rules[rule.id], fleet.rows[rule.id]
        for d in range(devices):  # the whole state, in the engine's JSON form, both ways
            rs = states[(rule.id, d)]
            assert columnar.engine_state(rows[d], {}) == rs.state
            back, raw = columnar.row_from_engine_state(rs.state, rs.holding, rs.last_ts, rs.due_at)
            assert raw == {} and back[HEADER:].tobytes() == rows[d][HEADER:].tobytes()


# (condition, values read one after another, whether the rule holds after each), by hand:
# the engine's `number` (finite, never a boolean) and `same` (True is never 1).
ODD_VALUES: list[tuple[dict[str, Any], list[Any], list[bool]]] = [
    (
        {"threshold": {"metric": "m", "above": 8}},
        [9, True, 9.5, "10", 2**60, None, float("inf"), 8.5],
        [True, False, True, False, True, False, False, True],
    ),
    (
        {"state": {"metric": "m", "equals": True}},
        [True, 1, 1.0, "true", False, None, True],
        [True, False, False, False, False, False, True],
    ),
    (
        {"state": {"metric": "m", "equals": 1}},
        [1, 1.0, True, "1", 2**60, 1],
        [True, True, False, False, False, True],
    ),
    (
        {"state": {"metric": "m", "not_equals": True}},
        [True, "yes", None, 1, [1], False],
        [False, True, False, True, True, True],
    ),
    (
        {"state": {"metric": "m", "one_of": [0, False]}},
        [0, 0.0, False, True, -0.0, 2**53 + 1],
        [True, True, True, False, True, False],
    ),
]


@pytest.mark.parametrize(("when", "values", "expected"), ODD_VALUES)
def test_values_of_every_type_are_judged_like_the_engine(
    when: dict[str, Any], values: list[Any], expected: list[bool]
) -> None:
    spec = {"key": "v.odd", "name": "n", "scope": {"model": "x"}, "when": when}
    rule = compile_rule(1, 1, parse_rule_spec({**spec, "actions": {"alert": {}}}))
    assert rule.columnar is not None
    rs, row, raw = fresh_state(rule, 1), rule.columnar.fresh_rows(1), {}
    judged_by_engine, judged_by_columns = [], []
    for minute, value in enumerate(values):
        evaluate(rule, rs, Input("reading", 60.0 * minute, {"m": value}), DeviceInfo(1, "x"))
        judged_by_engine.append(rs.holding)
        kind, number = encode_value(value)
        if needs_raw(kind):
            raw["m"] = value
        inputs = Inputs(
            np.array([60.0 * minute]),
            np.array([True]),
            {"m": np.array([True])},
            {"m": np.array([kind], dtype=np.int8)},
            {"m": np.array([number])},
        )
        rule.columnar.advance(row, inputs)
        judged_by_columns.append(bool(row[0, HOLDING]))
        assert rule.columnar.engine_state(row[0], raw) == rs.state  # raw values kept exactly
    assert judged_by_engine == expected
    assert judged_by_columns == expected


def test_value_kinds() -> None:
    assert encode_value(True) == (BOOL, 1.0)
    assert encode_value(3) == (INT, 3.0)
    assert encode_value(2**53) == (INT, float(2**53))
    assert encode_value(2**53 + 1) == (BIG_INT, float(2**53))
    assert encode_value(2.5) == (FLOAT, 2.5)
    assert encode_value(None)[0] == NULL
    assert encode_value("x")[0] == OTHER and encode_value([1])[0] == OTHER
    assert encode_value(10**400)[0] == OTHER  # too large for a float at all
    for value in (True, False, 0, -7, 2**53, 2.5, None):
        assert decode_value(*encode_value(value)) == value
        assert type(decode_value(*encode_value(value))) is type(value)


def test_text_states_and_stateful_types_are_refused() -> None:
    with pytest.raises(NotVectorizable):
        FleetEvaluator(
            [
                parse_rule_spec(
                    {
                        "key": "a.b",
                        "name": "n",
                        "scope": {"model": "ev"},
                        "when": {"state": {"metric": "mode", "equals": "off"}},
                        "actions": {"alert": {}},
                    }
                ).when
            ],
            3,
        )
    with pytest.raises(NotVectorizable):
        FleetEvaluator(
            [
                parse_rule_spec(
                    {
                        "key": "a.b",
                        "name": "n",
                        "scope": {"model": "ev"},
                        "when": {"event": {"name": "x"}},
                        "actions": {"alert": {}},
                    }
                ).when
            ],
            3,
        )
