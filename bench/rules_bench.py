"""`kizuna bench rules`: readings evaluated per second, 10 rules per device over a fleet.

Measures the columnar fleet evaluator (rules/vector.py) and, in the same run, the per-device
engine that the ingest step uses (rules/engine.py) as the reference, on the same readings;
it also checks that both made the same decisions on the devices they both evaluated.
"""

from __future__ import annotations

import json
import os
import time
from typing import Annotated, Any

import numpy as np
import typer

from rules.conditions import Input
from rules.engine import DeviceInfo, compile_rule, evaluate, fresh_state
from rules.models import RuleSpec, parse_rule_spec
from rules.vector import FleetEvaluator, Round

BOOLEAN_METRICS = ("door_open", "compressor_on")
# Ten refrigerator rules mixing every columnar condition type.
BENCH_CONDITIONS: list[dict[str, Any]] = [
    {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}},
    {"threshold": {"metric": "freezer_temp_c", "above": -15, "clear_below": -17}},
    {"threshold": {"metric": "power_w", "above": 350, "clear_below": 300}},
    {"state": {"metric": "door_open", "equals": True}},
    {"duration": {"for": "2m", "condition": {"state": {"metric": "door_open", "equals": True}}}},
    {
        "duration": {
            "for": "30m",
            "condition": {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}},
        }
    },
    {
        "all": [
            {"threshold": {"metric": "compressor_duty_pct", "above": 90}},
            {"state": {"metric": "compressor_on", "equals": True}},
        ]
    },
    {
        "any": [
            {"threshold": {"metric": "freezer_temp_c", "above": -10}},
            {"absence": {"after": "10m"}},
        ]
    },
    {"absence": {"after": "15m"}},
    {"not": {"state": {"metric": "compressor_on", "equals": False}}},
]


def bench_specs() -> list[RuleSpec]:
    """The benchmark's rules as validated specs."""
    return [
        parse_rule_spec(
            {
                "key": f"bench.rule{i}",
                "name": f"bench {i}",
                "scope": {"model": "refrigerator"},
                "when": when,
                "actions": {"alert": {}},
            }
        )
        for i, when in enumerate(BENCH_CONDITIONS)
    ]


def make_timeline(devices: int, rounds: int, seed: int) -> list[Round]:
    """Readings every ~minute per device with noise, silences and missing metrics."""
    rng = np.random.default_rng(seed)
    clock = np.full(devices, 1.7e9)
    temp = rng.normal(4.0, 1.0, devices)
    timeline = []
    for _ in range(rounds):
        clock = clock + rng.choice([50.0, 60.0, 70.0], size=devices)
        ts = np.where(rng.random(devices) < 0.05, np.nan, clock)
        temp = np.clip(temp + rng.normal(0.0, 0.8, devices), -5, 20)
        metrics = {
            "fridge_temp_c": temp.copy(),
            "freezer_temp_c": rng.normal(-18.0, 2.0, devices),
            "power_w": rng.normal(250.0, 60.0, devices),
            "compressor_duty_pct": rng.uniform(0, 100, devices),
            "door_open": (rng.random(devices) < 0.1).astype(float),
            "compressor_on": (rng.random(devices) < 0.6).astype(float),
        }
        timeline.append(Round(ts, metrics))
    return timeline


def run_vector(specs: list[RuleSpec], timeline: list[Round], devices: int) -> tuple[float, set]:
    """Seconds the fleet evaluator took, and its edges (round, rule, device, kind)."""
    fleet = FleetEvaluator([s.when for s in specs], devices)
    edges: set[tuple[int, int, int, str]] = set()
    elapsed = 0.0
    for step, batch in enumerate(timeline):
        started = time.perf_counter()
        result = fleet.step(batch)
        elapsed += time.perf_counter() - started
        for e in result:
            edges |= {(step, e.rule_index, int(d), "trigger") for d in e.triggered}
            edges |= {(step, e.rule_index, int(d), "clear") for d in e.cleared}
    return elapsed, edges


def scalar_inputs(timeline: list[Round], devices: int) -> list[list[Input | None]]:
    """The same readings as per-device inputs (built outside the timed part)."""
    rounds = []
    for batch in timeline:
        row: list[Input | None] = []
        for d in range(devices):
            if np.isnan(batch.ts[d]):
                row.append(None)
                continue
            metrics = {
                name: bool(col[d]) if name in BOOLEAN_METRICS else float(col[d])
                for name, col in batch.metrics.items()
            }
            row.append(Input("reading", float(batch.ts[d]), metrics))
        rounds.append(row)
    return rounds


def run_scalar(
    specs: list[RuleSpec], inputs: list[list[Input | None]], devices: int
) -> tuple[float, set]:
    """Seconds the per-device engine took on the first `devices` devices, and its edges."""
    rules = [compile_rule(i, 1, s) for i, s in enumerate(specs)]
    infos = [DeviceInfo(d, "refrigerator") for d in range(devices)]
    states = [[fresh_state(r, d) for r in rules] for d in range(devices)]
    edges: set[tuple[int, int, int, str]] = set()
    started = time.perf_counter()
    for step, row in enumerate(inputs):
        for d in range(devices):
            inp = row[d]
            if inp is None:
                continue
            for rule, rs in zip(rules, states[d], strict=True):
                edge = evaluate(rule, rs, inp, infos[d])
                if edge is not None:
                    edges.add((step, rule.id, d, edge.kind))
    return time.perf_counter() - started, edges


def rules(
    devices: Annotated[int, typer.Option(help="Fleet size.")] = 10_000,
    rounds: Annotated[int, typer.Option(help="Readings per device.")] = 30,
    reference_devices: Annotated[
        int, typer.Option(help="Devices the per-device reference engine evaluates.")
    ] = 1_000,
    seed: Annotated[int, typer.Option(help="Random seed of the timeline.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Readings evaluated per second with 10 rules per device (fleet evaluator vs engine)."""
    specs = bench_specs()
    timeline = make_timeline(devices, rounds, seed)
    readings = int(sum(np.count_nonzero(~np.isnan(b.ts)) for b in timeline))
    vector_s, vector_edges = run_vector(specs, timeline, devices)
    ref_devices = min(reference_devices, devices)
    ref_timeline = [
        Round(b.ts[:ref_devices], {k: v[:ref_devices] for k, v in b.metrics.items()})
        for b in timeline
    ]
    ref_readings = int(sum(np.count_nonzero(~np.isnan(b.ts)) for b in ref_timeline))
    scalar_s, scalar_edges = run_scalar(
        specs, scalar_inputs(ref_timeline, ref_devices), ref_devices
    )
    vector_on_ref = {e for e in vector_edges if e[2] < ref_devices}
    vector_rate, scalar_rate = readings / vector_s, ref_readings / scalar_s
    result = {
        "benchmark": "rules",
        "devices": devices,
        "rules_per_device": len(specs),
        "rounds": rounds,
        "readings": readings,
        "seconds": round(vector_s, 4),
        "readings_per_s": round(vector_rate),
        "rule_evaluations_per_s": round(vector_rate * len(specs)),
        "edges": len(vector_edges),
        "reference": {
            "engine": "per-device engine (rules/engine.py, used by the ingest step)",
            "devices": ref_devices,
            "readings": ref_readings,
            "seconds": round(scalar_s, 4),
            "readings_per_s": round(scalar_rate),
        },
        "speedup_vs_reference": round(vector_rate / scalar_rate, 1),
        "same_decisions_as_reference": vector_on_ref == scalar_edges,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    typer.echo(json.dumps(result, indent=None if as_json else 2))
