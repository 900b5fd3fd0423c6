"""`kizuna bench rules`: readings evaluated per second, 10 rules per device over a fleet.

Measures the columnar fleet evaluator (rules/vector.py) and, in the same run, the per-device
engine that the ingest step uses (rules/engine.py) as the reference, on the same readings;
it also checks that both made the same decisions on the devices they both evaluated. With
--database-url it also runs the real rules step (state in PostgreSQL) on a scratch database.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import typer

from app.logging import configure_logging
from ingest.records import AcceptedReading, StoredBatch
from rules import service
from rules.conditions import Input
from rules.engine import DeviceInfo, compile_rule, evaluate, fresh_state
from rules.models import RuleSpec, parse_rule_spec
from rules.runner import RuleRunner
from rules.vector import FleetEvaluator, Round
from store.db import connect, url_with_database
from store.migrate import upgrade

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
    """Readings every ~minute per device: drifting values, doors and compressors that switch
    now and then, 5 % of devices silent each round (so absence and late data get exercised)."""
    rng = np.random.default_rng(seed)
    clock = np.full(devices, 1.7e9)
    temp = rng.normal(4.0, 1.5, devices)
    freezer = rng.normal(-18.0, 1.5, devices)
    power = rng.normal(250.0, 40.0, devices)
    duty = rng.uniform(20, 95, devices)
    door = rng.random(devices) < 0.05
    compressor = rng.random(devices) < 0.6
    timeline = []
    for _ in range(rounds):
        clock = clock + rng.choice([50.0, 60.0, 70.0], size=devices)
        ts = np.where(rng.random(devices) < 0.05, np.nan, clock)
        temp = np.clip(temp + rng.normal(0.0, 0.4, devices), -5, 20)
        freezer = np.clip(freezer + rng.normal(0.0, 0.4, devices), -30, 0)
        power = np.clip(power + rng.normal(0.0, 15.0, devices), 0, 2000)
        duty = np.clip(duty + rng.normal(0.0, 3.0, devices), 0, 100)
        door = door ^ (rng.random(devices) < 0.05)
        compressor = compressor ^ (rng.random(devices) < 0.1)
        metrics = {
            "fridge_temp_c": temp.copy(),
            "freezer_temp_c": freezer.copy(),
            "power_w": power.copy(),
            "compressor_duty_pct": duty.copy(),
            "door_open": door.astype(float),
            "compressor_on": compressor.astype(float),
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


def run_step_on_database(
    admin_url: str, specs: list[RuleSpec], devices: int, rounds: int, batch_size: int
) -> dict[str, Any]:
    """Readings/s through the real rules step (state locked, read and written in PostgreSQL)."""
    name = f"kzbench_rules_{secrets.token_hex(4)}"
    with connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_with_database(admin_url, name)
    try:
        upgrade(url)
        ids = _register(url, specs, devices)
        inputs = scalar_inputs(make_timeline(devices, rounds, seed=11), devices)
        readings = [
            AcceptedReading(
                ids[d], f"b{d}", "refrigerator", r + 1, _dt(inp.ts), _dt(inp.ts), dict(inp.metrics)
            )
            for r, row in enumerate(inputs)
            for d, inp in enumerate(row)
            if inp is not None
        ]
        runner = RuleRunner()
        started = time.perf_counter()
        with connect(url) as conn:
            for start in range(0, len(readings), batch_size):
                with conn.transaction():
                    runner.process_batch(
                        conn, StoredBatch(readings[start : start + batch_size], [])
                    )
        elapsed = time.perf_counter() - started
        return {
            "devices": devices,
            "readings": len(readings),
            "batch_size": batch_size,
            "seconds": round(elapsed, 3),
            "readings_per_s": round(len(readings) / elapsed),
        }
    finally:
        with connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _register(url: str, specs: list[RuleSpec], devices: int) -> list[int]:
    with connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO product_models (id, spec) VALUES ('refrigerator', '{}')")
        for spec in specs:
            service.create_rule(conn, spec)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, 'refrigerator')",
                [(f"b{d}", f"b{d}") for d in range(devices)],
            )
        rows = conn.execute("SELECT id FROM devices ORDER BY id").fetchall()
    return [row["id"] for row in rows]


def rules(
    devices: Annotated[int, typer.Option(help="Fleet size.")] = 10_000,
    rounds: Annotated[int, typer.Option(help="Readings per device.")] = 30,
    reference_devices: Annotated[
        int, typer.Option(help="Devices the per-device reference engine evaluates.")
    ] = 1_000,
    seed: Annotated[int, typer.Option(help="Random seed of the timeline.")] = 7,
    database_url: Annotated[
        str | None,
        typer.Option(help="Also measure the rules step on PostgreSQL (a scratch database)."),
    ] = None,
    db_devices: Annotated[int, typer.Option(help="Devices for the database run.")] = 2_000,
    db_rounds: Annotated[int, typer.Option(help="Readings per device, database run.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Readings evaluated per second with 10 rules per device (fleet evaluator vs engine)."""
    configure_logging("warning")  # logs go to stderr; stdout carries only the JSON
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
        "step_on_database": None
        if database_url is None
        else run_step_on_database(database_url, specs, db_devices, db_rounds, batch_size=500),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    typer.echo(json.dumps(result, indent=None if as_json else 2))
