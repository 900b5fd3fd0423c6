"""kill -9 at random points while rules run: no alert, moment or notice is lost or doubled."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store.db import connect
from tests.conftest import create_database_from_template, drop_database
from tests.rules import kill_scenario

ROOT = Path(__file__).resolve().parents[2]
KILLS = 6
OUTCOME_QUERIES = {
    "alerts": "SELECT a.device_id, r.key, a.severity, a.status, a.opened_at, a.cleared_at,"
    " a.clear_reason FROM alerts a JOIN rules r ON r.id = a.rule_id ORDER BY 1, 2, 5",
    "moments": "SELECT device_id, kind, occurred_at, facts FROM moments ORDER BY 1, 2, 3",
    "notices": "SELECT device_id, message, occurred_at FROM operator_notifications ORDER BY 1, 3",
    "states": "SELECT rule_id, device_id, holding, last_ts, due_at, state FROM rule_states"
    " ORDER BY 1, 2",
    "columnar_states": "SELECT device_id, slots, raw_values, due_at FROM columnar_rule_states"
    " ORDER BY 1",
    # ids come from sequences, which a rolled-back transaction still advances: compare content
    "history": "SELECT a.device_id, a.rule_id, h.at, h.from_status, h.to_status"
    " FROM alert_history h JOIN alerts a ON a.id = h.alert_id ORDER BY 1, 2, 3, 5",
}


def outcome(url: str) -> dict[str, list[dict[str, Any]]]:
    """Everything the rules wrote."""
    with contextlib.closing(connect(url, autocommit=True)) as conn:
        return {
            name: [dict(row) for row in conn.execute(sql).fetchall()]
            for name, sql in OUTCOME_QUERIES.items()
        }


@pytest.fixture
def reference_url(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    """A second fresh database for the run without kills."""
    url = create_database_from_template(postgres_admin_url, template_database)
    try:
        yield url
    finally:
        drop_database(postgres_admin_url, url)


def _prepare(url: str) -> None:
    with contextlib.closing(connect(url)) as conn, conn.transaction():
        kill_scenario.setup(conn)


@pytest.mark.slow
def test_kill_9_at_random_points_loses_and_doubles_nothing(
    database_url: str, reference_url: str
) -> None:
    _prepare(reference_url)
    kill_scenario.run_all(reference_url)
    expected = outcome(reference_url)
    assert len(expected["alerts"]) > 20  # the timeline really does open and clear alerts
    assert any(a["key"] == "k.silent" for a in expected["alerts"])  # fired by the scheduler
    assert any(a["key"] == "k.door" for a in expected["alerts"])
    assert len(expected["columnar_states"]) == kill_scenario.DEVICES  # the rules ran columnar

    _prepare(database_url)
    rng = random.Random(int.from_bytes(os.urandom(4)))
    kills, done = 0, -1
    while kills < KILLS:
        worker = _start(database_url)
        done = _wait_for_progress(database_url, done, worker)
        if worker.poll() is not None:
            break  # finished before we could kill it again
        time.sleep(rng.uniform(0, 0.03))  # somewhere inside a step (a step takes ~15 ms)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills += 1
    worker = _start(database_url)
    assert worker.wait(timeout=120) == 0, worker.stderr.read().decode() if worker.stderr else ""
    assert kills >= KILLS - 2, "the worker finished before it could be killed often enough"
    assert outcome(database_url) == expected


def _start(url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.rules.kill_scenario", url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_progress(url: str, done: int, worker: subprocess.Popen[bytes]) -> int:
    """Block until the worker has committed a step past `done` (or exited); the new progress."""
    with contextlib.closing(connect(url, autocommit=True)) as conn:
        while True:
            row = conn.execute("SELECT coalesce(max(step), -1) AS n FROM kill_progress").fetchone()
            assert row is not None
            if row["n"] > done or worker.poll() is not None:
                return int(row["n"])
            time.sleep(0.005)
