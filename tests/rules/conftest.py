"""Rules fixtures: devices in the test database and a way to feed them through the rules step.

`Feeder` plays ingest's part: it builds a StoredBatch and runs the rules step inside one
transaction, exactly as ingest does after writing telemetry and twins.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import Connection
from psycopg.rows import DictRow

from ingest.records import AcceptedEvent, AcceptedReading, StoredBatch
from rules import service
from rules.runner import RuleRunner
from store.db import connect
from tests.api.conftest import (  # noqa: F401  (the API fixtures, for tests/rules/test_api.py)
    api,
    api_settings,
    make_user,
    operator,
    smtp,
    support,
)
from tests.ingest.conftest import make_device, start_ingest  # noqa: F401  (test_through_ingest)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 18:00 in Tokyo


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(**delta)


@dataclass
class Device:
    """A device row made for a test."""

    id: int
    uid: str
    model_id: str
    seq: int = 0


def add_device(
    db: Connection[DictRow],
    model_id: str,
    *,
    home: tuple[float, float] | None = None,
    time_zone: str | None = None,
) -> Device:
    """Insert a device (and an owner in `time_zone`, when given)."""
    db.execute(
        "INSERT INTO product_models (id, spec) VALUES (%s, '{}') ON CONFLICT (id) DO NOTHING",
        (model_id,),
    )
    uid = f"{model_id[:3]}-{secrets.token_hex(4)}"
    lat, lon = home if home else (None, None)
    row = db.execute(
        "INSERT INTO devices (uid, serial, model_id, latitude, longitude)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (uid, uid, model_id, lat, lon),
    ).fetchone()
    assert row is not None
    if time_zone is not None:
        customer = db.execute(
            "INSERT INTO customers (time_zone) VALUES (%s) RETURNING id", (time_zone,)
        ).fetchone()
        assert customer is not None
        db.execute(
            "INSERT INTO device_ownerships (device_id, customer_id, role) VALUES (%s, %s, 'owner')",
            (row["id"], customer["id"]),
        )
    return Device(row["id"], uid, model_id)


@dataclass
class Feeder:
    """Runs batches and timer sweeps against the test database, one transaction each."""

    url: str
    clock: FakeClock = field(default_factory=FakeClock)
    columnar: bool = True  # False: every rule through the per-device engine
    runner: RuleRunner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = RuleRunner(self.clock, columnar=self.columnar)

    def restart(self) -> None:
        """A new engine with no memory, as after a process restart."""
        self.runner = RuleRunner(self.clock, columnar=self.columnar)

    def reading(self, device: Device, at: datetime, **metrics: Any) -> AcceptedReading:
        """A reading as ingest would hand it over."""
        device.seq += 1
        return AcceptedReading(device.id, device.uid, device.model_id, device.seq, at, at, metrics)

    def event(self, device: Device, at: datetime, name: str, **data: Any) -> AcceptedEvent:
        """An event as ingest would hand it over."""
        device.seq += 1
        return AcceptedEvent(device.id, device.uid, device.model_id, device.seq, at, at, name, data)

    def batch(self, *items: AcceptedReading | AcceptedEvent) -> None:
        """Run the rules step on one batch inside one transaction."""
        readings = [i for i in items if isinstance(i, AcceptedReading)]
        events = [i for i in items if isinstance(i, AcceptedEvent)]
        with contextlib.closing(connect(self.url)) as conn, conn.transaction():
            self.runner.process_batch(conn, StoredBatch(readings, events))

    def send(self, device: Device, at: datetime, **metrics: Any) -> None:
        """One reading in a batch of its own."""
        self.batch(self.reading(device, at, **metrics))

    def sweep(self) -> int:
        """Fire every timer due by the clock; how many were evaluated."""
        total = 0
        while True:
            with contextlib.closing(connect(self.url)) as conn, conn.transaction():
                stats = self.runner.fire_due(conn, 100)
            total += stats.evaluations
            if not stats.claim_limit_reached:
                return total


@pytest.fixture
def feeder(database_url: str) -> Feeder:
    """Feeds batches through the rules step on this test's database."""
    return Feeder(database_url)


def install_packs(db: Connection[DictRow]) -> None:
    """Install the built-in rule packs (with the product model rows they need)."""
    for model_id in ("ev", "refrigerator", "washing_machine", "air_conditioner"):
        db.execute(
            "INSERT INTO product_models (id, spec) VALUES (%s, '{}') ON CONFLICT (id) DO NOTHING",
            (model_id,),
        )
    service.install_builtin_packs(db)


def make_rule(db: Connection[DictRow], key: str, model: str, when: Any, **actions: Any) -> int:
    """Store a model-scoped rule that opens an alert (plus any other actions); its id."""
    spec = {"key": key, "name": key, "scope": {"model": model}, "when": when}
    spec["actions"] = {"alert": {"severity": "warning"}, **actions}
    return service.create_rule(db, spec).id


def rows(db: Connection[DictRow], sql: str, *params: Any) -> list[dict[str, Any]]:
    """Fetch rows as plain dicts."""
    return [dict(row) for row in db.execute(sql, params).fetchall()]


def moments(db: Connection[DictRow], device: Device) -> list[dict[str, Any]]:
    """Moments of a device, oldest first."""
    return rows(
        db,
        "SELECT kind, severity, occurred_at, facts FROM moments WHERE device_id = %s"
        " ORDER BY occurred_at, id",
        device.id,
    )


def alerts(db: Connection[DictRow], device: Device) -> list[dict[str, Any]]:
    """Alerts of a device, oldest first."""
    return rows(
        db,
        "SELECT id, rule_id, severity, status, opened_at, cleared_at, clear_reason FROM alerts"
        " WHERE device_id = %s ORDER BY opened_at, id",
        device.id,
    )


def minutes(n: float) -> timedelta:
    """Shorthand for test timelines."""
    return timedelta(minutes=n)


@pytest.fixture
def conn_iter(database_url: str) -> Iterator[Connection[DictRow]]:
    """A non-autocommit connection for tests that manage transactions themselves."""
    with contextlib.closing(connect(database_url)) as conn:
        yield conn
