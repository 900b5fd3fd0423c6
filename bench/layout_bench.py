"""`kizuna bench layout`: insert rate (COPY) and bytes per data point of telemetry layouts."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from psycopg import Connection
from psycopg.types.json import Jsonb

from store.db import connect
from store.scratch import scratch_database

METRICS_PER_MESSAGE = 8
# A washing machine reading: numbers, integers, booleans and an enum, like real traffic.
METRIC_NAMES = (
    "phase",
    "remaining_min",
    "water_flow_lpm",
    "drum_temp_c",
    "leak_detected",
    "power_w",
    "cycles_since_drum_clean",
    "door_locked",
)
PHASES = ("idle", "fill", "wash", "rinse", "spin", "done", "paused")

Message = tuple[int, datetime, int, dict[str, Any]]

LAYOUTS: dict[str, str] = {
    "narrow": """
        CREATE TABLE t (device_id bigint NOT NULL, ts timestamptz NOT NULL, seq bigint NOT NULL,
                        metric smallint NOT NULL, value float8);
        CREATE INDEX ON t (device_id, metric, ts)""",
    "jsonb": """
        CREATE TABLE t (device_id bigint NOT NULL, ts timestamptz NOT NULL, seq bigint NOT NULL,
                        received_at timestamptz NOT NULL, metrics jsonb NOT NULL);
        CREATE UNIQUE INDEX ON t (device_id, seq, ts)""",
    "float8_array": """
        CREATE TABLE t (device_id bigint NOT NULL, ts timestamptz NOT NULL, seq bigint NOT NULL,
                        received_at timestamptz NOT NULL, vals float8[] NOT NULL);
        CREATE UNIQUE INDEX ON t (device_id, seq, ts)""",
}


def _messages(count: int, devices: int) -> list[Message]:
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        device = i % devices
        metrics = {
            "phase": rng.choice(PHASES),
            "remaining_min": rng.randint(0, 120),
            "water_flow_lpm": round(rng.uniform(0, 20), 2),
            "drum_temp_c": round(rng.uniform(10, 60), 1),
            "leak_detected": rng.random() < 0.01,
            "power_w": round(rng.uniform(0, 2000), 1),
            "cycles_since_drum_clean": rng.randint(0, 60),
            "door_locked": rng.random() < 0.5,
        }
        out.append((device + 1, start + timedelta(seconds=i // devices), i // devices, metrics))
    return out


def _as_float(name: str, value: Any) -> float:
    if name == "phase":
        return float(PHASES.index(value))
    return float(value)


def _rows(layout: str, messages: Sequence[Message], now: datetime) -> Iterator[tuple[Any, ...]]:
    for device_id, ts, seq, metrics in messages:
        if layout == "narrow":
            for slot, name in enumerate(METRIC_NAMES):
                yield (device_id, ts, seq, slot, _as_float(name, metrics[name]))
        elif layout == "jsonb":
            yield (device_id, ts, seq, now, Jsonb(metrics))
        else:
            # The array literal is formatted here, as store/telemetry.py does: psycopg's list
            # adaptation costs more than the whole server-side insert.
            values = ",".join(repr(_as_float(n, metrics[n])) for n in METRIC_NAMES)
            yield (device_id, ts, seq, now, "{" + values + "}")


def _measure(conn: Connection[Any], layout: str, messages: Sequence[Message]) -> dict[str, Any]:
    conn.execute("DROP TABLE IF EXISTS t")
    conn.execute(LAYOUTS[layout])
    columns = {"narrow": "device_id, ts, seq, metric, value"}.get(layout)
    columns = columns or (
        "device_id, ts, seq, received_at, " + ("metrics" if layout == "jsonb" else "vals")
    )
    now = datetime.now(UTC)
    started = time.perf_counter()
    batch = 2000
    for first in range(0, len(messages), batch):
        with (
            conn.transaction(),
            conn.cursor() as cur,
            cur.copy(f"COPY t ({columns}) FROM STDIN") as copy,
        ):
            for row in _rows(layout, messages[first : first + batch], now):
                copy.write_row(row)
    elapsed = time.perf_counter() - started
    conn.execute("VACUUM ANALYZE t")
    size: Any = conn.execute("SELECT pg_total_relation_size('t') AS b").fetchone()
    table: Any = conn.execute("SELECT pg_relation_size('t') AS b").fetchone()
    points = len(messages) * METRICS_PER_MESSAGE
    return {
        "layout": layout,
        "messages": len(messages),
        "seconds": round(elapsed, 3),
        "msgs_per_s": round(len(messages) / elapsed),
        "points_per_s": round(points / elapsed),
        "bytes_per_point_total": round(size["b"] / points, 1),
        "bytes_per_point_heap": round(table["b"] / points, 1),
    }


def run_layout_bench(admin_url: str, messages: int, devices: int, rounds: int) -> dict[str, Any]:
    """Measure every layout `rounds` times in turn (interleaved, so load noise spreads evenly)."""
    data = _messages(messages, devices)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in LAYOUTS}
    with (
        scratch_database(admin_url, "layout", migrate=False) as url,
        connect(url, autocommit=True) as conn,
    ):
        for _ in range(rounds):
            for layout in LAYOUTS:
                results[layout].append(_measure(conn, layout, data))
    best: Callable[[str], dict[str, Any]] = lambda name: max(  # noqa: E731
        results[name], key=lambda r: r["msgs_per_s"]
    )
    summary = {name: best(name) for name in LAYOUTS}
    reference = summary["narrow"]["msgs_per_s"]
    for row in summary.values():
        row["insert_rate_vs_narrow"] = round(row["msgs_per_s"] / reference, 2)
    return {
        "benchmark": "layout",
        "metrics_per_message": METRICS_PER_MESSAGE,
        "devices": devices,
        "rounds": rounds,
        "cpu_count": os.cpu_count(),
        "layouts": summary,
        "all_rounds": results,
    }


def layout(
    database_url: Annotated[
        str | None,
        typer.Option(envvar="KIZUNA_DATABASE_URL", help="Server to measure on (a scratch DB)."),
    ] = None,
    messages: Annotated[int, typer.Option(help="Messages per layout and round.")] = 50_000,
    devices: Annotated[int, typer.Option(help="Distinct devices.")] = 500,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds; the best is reported.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = True,
) -> None:
    """Compare narrow, JSONB and float8[] telemetry layouts: COPY rate and bytes per point."""
    from app.logging import configure_logging

    configure_logging("warning")  # logs to stderr: stdout is the JSON result
    if database_url:
        result = run_layout_bench(database_url, messages, devices, rounds)
    else:
        from pathlib import Path

        from app.embedded import embedded_postgres

        with embedded_postgres(Path(".kizuna")) as url:
            result = run_layout_bench(url, messages, devices, rounds)
    typer.echo(json.dumps(result if as_json else result["layouts"], indent=2, default=str))
