"""`kizuna bench rules`: readings per second through the rules, 10 rules per device.

One run measures, on the same kind of timeline (drifting temperatures, doors and compressors
switching now and then, 5 % of devices silent each minute):

- `live`: the rules step as ingest runs it (`RuleRunner.process_batch` in one transaction per
  batch: rule state loaded and locked, rules evaluated, changed state and every alert written)
  on PostgreSQL, with batches shaped like ingest's: 2,000 readings over 1,000 devices (two
  readings each), and 2,000 readings at a time from a fleet of 10,000 devices. This is the
  headline `readings_per_s`.
- `engine_step`: the same step with every rule in the per-device engine (`columnar=False`),
  on the first batches of the 1,000-device timeline; the live run's alerts on those batches
  must be the same (`same_decisions_as_engine_step`).
- `vector`: the columnar evaluator alone, in memory, over 10,000 devices.
- `reference`: the per-device engine alone, in memory, on 1,000 of those devices; the vector
  run must make the same decisions on them (`vector_same_decisions_as_reference`).

Without --database-url an embedded PostgreSQL is started for the live runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
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
from store.db import connect
from store.scratch import scratch_database

BOOLEAN_METRICS = frozenset({"door_open", "compressor_on"})
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
BATCH_READINGS = 2_000  # ingest's default batch_max_messages
INGEST_LANES = 2  # ingest's default writer_lanes


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
        timeline.append(Round(ts, metrics, BOOLEAN_METRICS))
    return timeline


def _readings(timeline: list[Round]) -> int:
    return int(sum(np.count_nonzero(~np.isnan(r.ts)) for r in timeline))


def _metrics(batch: Round, device: int) -> dict[str, Any]:
    return {
        name: bool(column[device]) if name in BOOLEAN_METRICS else float(column[device])
        for name, column in batch.metrics.items()
    }


# ---------------------------------------------------------------- in memory


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
    return [
        [
            None
            if np.isnan(batch.ts[d])
            else Input("reading", float(batch.ts[d]), _metrics(batch, d))
            for d in range(devices)
        ]
        for batch in timeline
    ]


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


# ---------------------------------------------------------------- the live step on PostgreSQL


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def timeline_readings(timeline: list[Round], device_ids: list[int]) -> list[AcceptedReading]:
    """The timeline's readings as ingest hands them over, in the order devices report (device
    by device within a round, rounds one after another)."""
    return [
        AcceptedReading(
            device_ids[d],
            f"b{d}",
            "refrigerator",
            r + 1,
            _dt(float(batch.ts[d])),
            _dt(float(batch.ts[d])),
            _metrics(batch, d),
        )
        for r, batch in enumerate(timeline)
        for d in np.flatnonzero(~np.isnan(batch.ts)).tolist()
    ]


def batched(readings: list[AcceptedReading], per_batch: int) -> list[StoredBatch]:
    """Consecutive batches of `per_batch` readings."""
    return [
        StoredBatch(readings[i : i + per_batch], []) for i in range(0, len(readings), per_batch)
    ]


def live_batches(timeline: list[Round], device_ids: list[int], per_batch: int) -> list[StoredBatch]:
    """The timeline in batches of `per_batch` readings, as one ingest writer lane gets them."""
    return batched(timeline_readings(timeline, device_ids), per_batch)


def lane_batches(
    timeline: list[Round], device_ids: list[int], lanes: int, per_batch: int
) -> list[list[StoredBatch]]:
    """The timeline split into ingest's writer lanes (crc32 of the device uid), then batched."""
    readings = timeline_readings(timeline, device_ids)
    lane_of = {r.device_uid: zlib.crc32(r.device_uid.encode()) % lanes for r in readings}
    return [
        batched([r for r in readings if lane_of[r.device_uid] == lane], per_batch)
        for lane in range(lanes)
    ]


def _register(url: str, specs: list[RuleSpec], devices: int) -> list[int]:
    with connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO product_models (id, spec) VALUES ('refrigerator', '{}')")
        for spec in specs:
            service.create_rule(conn, spec)
        conn.execute(
            "INSERT INTO devices (uid, serial, model_id)"
            " SELECT 'b' || d, 'b' || d, 'refrigerator' FROM generate_series(0, %s - 1) d",
            (devices,),
        )
        rows = conn.execute("SELECT id FROM devices ORDER BY id").fetchall()
    return [row["id"] for row in rows]


def _alerts(url: str) -> list[tuple[Any, ...]]:
    with connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT device_id, rule_id, status, opened_at, cleared_at FROM alerts ORDER BY 1, 2, 4"
        ).fetchall()
    return [tuple(row.values()) for row in rows]


@dataclass
class StepTimes:
    """Timed batches of one run of the rules step."""

    seconds: list[float] = field(default_factory=list)
    readings: list[int] = field(default_factory=list)
    devices: list[int] = field(default_factory=list)
    edges: list[int] = field(default_factory=list)
    rows_written: list[int] = field(default_factory=list)

    def extend(self, other: StepTimes) -> StepTimes:
        """Both runs' batches."""
        return StepTimes(
            self.seconds + other.seconds,
            self.readings + other.readings,
            self.devices + other.devices,
            self.edges + other.edges,
            self.rows_written + other.rows_written,
        )

    def summary(self) -> dict[str, Any]:
        """Totals, readings per second and batch times."""
        total, count = sum(self.seconds), len(self.seconds)
        return {
            "batches": count,
            "readings": sum(self.readings),
            "seconds": round(total, 3),
            "readings_per_s": round(sum(self.readings) / total),
            "devices_per_batch": round(sum(self.devices) / count),
            "edges_per_batch": round(sum(self.edges) / count),
            "state_rows_written_per_batch": round(sum(self.rows_written) / count),
            "batch_ms_median": round(statistics.median(self.seconds) * 1000, 1),
            "batch_ms_max": round(max(self.seconds) * 1000, 1),
        }


def run_step(url: str, batches: list[StoredBatch], warmup: int, *, columnar: bool) -> StepTimes:
    """Run batches through the rules step, one transaction each; time all but the first
    `warmup` ones (those insert the first rule state rows)."""
    runner = RuleRunner(columnar=columnar)
    times = StepTimes()
    with connect(url) as conn:
        for number, batch in enumerate(batches):
            started = time.perf_counter()
            with conn.transaction():
                stats = runner.process_batch(conn, batch)
            if number >= warmup:
                times.seconds.append(time.perf_counter() - started)
                times.readings.append(len(batch.readings))
                times.devices.append(len({r.device_id for r in batch.readings}))
                times.edges.append(stats.triggers + stats.clears)
                times.rows_written.append(stats.rows_written)
    return times


def run_lanes(url: str, lanes: list[list[StoredBatch]], warmup: int) -> StepTimes:
    """Lanes side by side, each with its own connection, as ingest's writer lanes run (each
    device in one lane). Each lane's first `warmup` batches run before the clock starts."""
    if any(len(batches) <= warmup for batches in lanes):
        raise typer.BadParameter("too few readings per device for a timed lane run")
    ready = threading.Barrier(len(lanes) + 1)
    results: list[StepTimes] = [StepTimes() for _ in lanes]

    def lane(index: int) -> None:
        runner = RuleRunner()
        with connect(url) as conn:
            for number, batch in enumerate(lanes[index]):
                if number == warmup:
                    ready.wait()
                with conn.transaction():
                    stats = runner.process_batch(conn, batch)
                if number >= warmup:
                    times = results[index]
                    times.readings.append(len(batch.readings))
                    times.devices.append(len({r.device_id for r in batch.readings}))
                    times.edges.append(stats.triggers + stats.clears)
                    times.rows_written.append(stats.rows_written)

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(len(lanes))]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = StepTimes()
    for times in results:
        total = total.extend(times)
    # one wall-clock span for all lanes, shared out per batch for the summary
    total.seconds = [elapsed / len(total.readings)] * len(total.readings)
    return total


def live_runs(
    admin_url: str,
    specs: list[RuleSpec],
    small_fleet: int,
    small_rounds: int,
    large_fleet: int,
    large_rounds: int,
    engine_batches: int,
) -> dict[str, Any]:
    """The live step on two fleet sizes, and the engine-only step as the in-run reference."""
    per_device = BATCH_READINGS // small_fleet  # readings per device in one batch
    small = make_timeline(small_fleet, small_rounds, seed=11)
    with (
        scratch_database(admin_url, "rules_live") as url,
        scratch_database(admin_url, "rules_engine") as engine_url,
    ):
        ids = _register(url, specs, small_fleet)
        _register(engine_url, specs, small_fleet)
        batches = live_batches(small, ids, BATCH_READINGS)
        # both runs skip the first batch (it inserts the state rows); the engine-only step is
        # slow, so it runs the next `engine_batches` only, and the alerts must agree there
        engine = run_step(engine_url, batches[: engine_batches + 1], 1, columnar=False)
        checked = run_step(url, batches[: engine_batches + 1], 1, columnar=True)
        same = _alerts(url) == _alerts(engine_url)
        rest = run_step(url, batches[engine_batches + 1 :], 0, columnar=True)
    small_result = checked.extend(rest).summary()
    small_result.update(devices=small_fleet, readings_per_device_per_batch=per_device)
    large = make_timeline(large_fleet, large_rounds, seed=12)
    with scratch_database(admin_url, "rules_live_large") as url:
        ids = _register(url, specs, large_fleet)
        batches = live_batches(large, ids, BATCH_READINGS)
        warmup = -(-large_fleet // BATCH_READINGS)  # the first pass over the fleet inserts
        large_result = run_step(url, batches, warmup, columnar=True).summary()
    large_result.update(devices=large_fleet, readings_per_device_per_batch=1)
    with scratch_database(admin_url, "rules_live_lanes") as url:
        ids = _register(url, specs, large_fleet)
        lanes = lane_batches(large, ids, INGEST_LANES, BATCH_READINGS)
        warmup = -(-large_fleet // (INGEST_LANES * BATCH_READINGS))
        lanes_result = run_lanes(url, lanes, warmup).summary()
    lanes_result.update(devices=large_fleet, lanes=INGEST_LANES, readings_per_device_per_batch=1)
    del lanes_result["batch_ms_median"], lanes_result["batch_ms_max"]  # one span for all lanes
    engine_result = engine.summary()
    engine_result.update(devices=small_fleet, readings_per_device_per_batch=per_device)
    return {
        "batch_readings": BATCH_READINGS,
        "fleet_1000": small_result,
        "fleet_10000": large_result,
        "fleet_10000_two_lanes": lanes_result,
        "engine_step": engine_result,
        "same_decisions_as_engine_step": same,
    }


@contextlib.contextmanager
def _database(database_url: str | None) -> Iterator[str]:
    if database_url is not None:
        yield database_url
        return
    from app.embedded import embedded_postgres

    with (
        tempfile.TemporaryDirectory(prefix="kizuna-bench-") as work,
        embedded_postgres(Path(work) / "pg") as url,
    ):
        yield url


def rules(
    devices: Annotated[int, typer.Option(help="Fleet size, vector run.")] = 10_000,
    rounds: Annotated[int, typer.Option(help="Readings per device, vector run.")] = 30,
    reference_devices: Annotated[
        int, typer.Option(help="Devices the in-memory per-device engine evaluates.")
    ] = 1_000,
    seed: Annotated[int, typer.Option(help="Random seed of the vector timeline.")] = 7,
    database_url: Annotated[
        str | None,
        typer.Option(
            envvar="KIZUNA_DATABASE_URL",
            help="Server for the live runs (scratch databases); default: embedded PostgreSQL.",
        ),
    ] = None,
    live_rounds: Annotated[
        int, typer.Option(help="Readings per device, live run on 1,000 devices.")
    ] = 24,
    live_large_rounds: Annotated[
        int, typer.Option(help="Readings per device, live run on 10,000 devices.")
    ] = 4,
    engine_batches: Annotated[
        int, typer.Option(help="Timed batches of the engine-only step (it is slow).")
    ] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Readings per second through the live rules step, the columnar evaluator and the engine."""
    configure_logging("warning")  # logs go to stderr; stdout carries only the JSON
    specs = bench_specs()
    timeline = make_timeline(devices, rounds, seed)
    readings = _readings(timeline)
    vector_s, vector_edges = run_vector(specs, timeline, devices)
    ref_devices = min(reference_devices, devices)
    ref_timeline = [
        Round(b.ts[:ref_devices], {k: v[:ref_devices] for k, v in b.metrics.items()}, b.booleans)
        for b in timeline
    ]
    ref_readings = _readings(ref_timeline)
    scalar_s, scalar_edges = run_scalar(
        specs, scalar_inputs(ref_timeline, ref_devices), ref_devices
    )
    vector_on_ref = {e for e in vector_edges if e[2] < ref_devices}
    vector_rate, scalar_rate = readings / vector_s, ref_readings / scalar_s
    with _database(database_url) as admin_url:
        live = live_runs(
            admin_url, specs, 1_000, live_rounds, 10_000, live_large_rounds, engine_batches
        )
    live_rate = live["fleet_1000"]["readings_per_s"]
    engine_rate = live["engine_step"]["readings_per_s"]
    for run in (live["fleet_1000"], live["fleet_10000"]):
        run["speedup_vs_engine_step"] = round(run["readings_per_s"] / engine_rate, 1)
        run["speedup_vs_reference"] = round(run["readings_per_s"] / scalar_rate, 1)
    result = {
        "benchmark": "rules",
        "rules_per_device": len(specs),
        "readings_per_s": live_rate,
        "headline": "live rules step on PostgreSQL: batches of 2,000 readings over 1,000 devices,"
        " state load + evaluation + state and alert writes, one transaction per batch",
        "live_10000_devices_readings_per_s": live["fleet_10000"]["readings_per_s"],
        "vector_readings_per_s": round(vector_rate),
        "reference_readings_per_s": round(scalar_rate),
        "live": live,
        "vector": {
            "evaluator": "columnar evaluator in memory (rules/vector.py)",
            "devices": devices,
            "rounds": rounds,
            "readings": readings,
            "seconds": round(vector_s, 4),
            "readings_per_s": round(vector_rate),
            "rule_evaluations_per_s": round(vector_rate * len(specs)),
            "edges": len(vector_edges),
            "speedup_vs_reference": round(vector_rate / scalar_rate, 1),
            "same_decisions_as_reference": vector_on_ref == scalar_edges,
        },
        "reference": {
            "engine": "per-device engine in memory (rules/engine.py)",
            "devices": ref_devices,
            "readings": ref_readings,
            "seconds": round(scalar_s, 4),
            "readings_per_s": round(scalar_rate),
        },
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    typer.echo(json.dumps(result, indent=None if as_json else 2))
