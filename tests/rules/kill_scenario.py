"""A deterministic fleet timeline run step by step, resumable after kill -9 (used by test_kill.py).

Each step (one telemetry batch, or one timer sweep at a given clock) runs in one transaction
that also records the step in `kill_progress`, the way ingest acknowledges MQTT only after
commit: a step that did not commit is redone from scratch by the next process.

Run as `python -m tests.rules.kill_scenario <database url>`.
"""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime, timedelta

from psycopg import Connection
from psycopg.rows import DictRow

from ingest.records import AcceptedReading, StoredBatch
from rules import service
from rules.runner import RuleRunner
from store.db import connect

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DEVICES = 24
MINUTES = 40
RULES = [
    {
        "key": "k.door",
        "when": {
            "duration": {
                "for": "10m",
                "condition": {"state": {"metric": "door_open", "equals": True}},
            }
        },
        "actions": {"alert": {}, "moment": {"kind": "refrigerator.door_left_open"}},
    },
    {
        "key": "k.warm",
        "when": {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}},
        "actions": {
            "alert": {"severity": "critical"},
            "moment": {"kind": "refrigerator.too_warm", "facts_from": {"t": "fridge_temp_c"}},
        },
    },
    {
        "key": "k.silent",
        "when": {"absence": {"after": "5m"}},
        "actions": {"alert": {"severity": "info"}, "notify_operators": {"message": "silent"}},
    },
]


def setup(conn: Connection[DictRow]) -> None:
    """Rules, devices and the progress table (run once, before any worker)."""
    conn.execute("INSERT INTO product_models (id, spec) VALUES ('refrigerator', '{}')")
    for rule in RULES:
        service.create_rule(conn, {"name": "n", "scope": {"model": "refrigerator"}, **rule})
    for i in range(DEVICES):
        conn.execute(
            "INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, 'refrigerator')",
            (f"fridge-{i}", f"serial-{i}"),
        )
    conn.execute("CREATE TABLE kill_progress (step integer PRIMARY KEY)")


def reading(i: int, minute: int) -> AcceptedReading | None:
    """Device i's reading at a minute, or None while it is silent."""
    start, length = i % 7, 5 + (i % 13)
    if i % 4 == 0 and start + 2 <= minute < start + 17:
        return None
    metrics = {
        "door_open": start <= minute < start + length,
        "fridge_temp_c": 10.0 if (minute + i) % 17 < 5 else 5.0,
    }
    at = T0 + timedelta(minutes=minute)
    return AcceptedReading(i + 1, f"fridge-{i}", "refrigerator", minute + 1, at, at, metrics)


def run_step(conn: Connection[DictRow], step: int) -> None:
    """Even steps: the batch of minute step/2; odd steps: a sweep 30 s later."""
    minute = step // 2
    if step % 2 == 0:
        found = [reading(i, minute) for i in range(DEVICES)]
        RuleRunner().process_batch(conn, StoredBatch([r for r in found if r is not None], []))
    else:
        now = T0 + timedelta(minutes=minute, seconds=30)
        RuleRunner(lambda: now).fire_due(conn, limit=10_000)


def run_all(url: str) -> None:
    """Run every step not yet committed."""
    with contextlib.closing(connect(url)) as conn:
        row = conn.execute("SELECT coalesce(max(step), -1) AS done FROM kill_progress").fetchone()
        conn.commit()
        assert row is not None
        for step in range(row["done"] + 1, MINUTES * 2):
            with conn.transaction():
                run_step(conn, step)
                conn.execute("INSERT INTO kill_progress (step) VALUES (%s)", (step,))


if __name__ == "__main__":
    run_all(sys.argv[1])
