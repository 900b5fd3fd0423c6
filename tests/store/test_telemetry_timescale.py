"""The TimescaleDB variant of the telemetry schema (runs only where a TimescaleDB URL is given)."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from typing import Any

import pytest

from devices.catalog import builtin_models
from devices.catalog_sync import sync_product_models
from store.db import connect, url_with_database
from store.migrate import upgrade
from store.telemetry import TelemetryRow, ensure_partitions, ensure_slots, insert_telemetry

TIMESCALE_URL = os.environ.get("KIZUNA_TEST_TIMESCALE_URL")

pytestmark = pytest.mark.skipif(
    not TIMESCALE_URL,
    reason="set KIZUNA_TEST_TIMESCALE_URL to a TimescaleDB server to test the hypertable variant",
)


def test_hypertable_with_compression_policy_and_dedup():
    assert TIMESCALE_URL
    name = f"kzt_timescale_{os.getpid()}_{secrets.token_hex(4)}"
    with connect(TIMESCALE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_with_database(TIMESCALE_URL, name)
    try:
        upgrade(url)
        with connect(url, autocommit=True) as typed:
            conn: Any = typed  # rows are dicts; the test reads them directly
            variant = conn.execute(
                "SELECT variant FROM schema_migrations WHERE id = 'store/0003_telemetry'"
            ).fetchone()
            assert variant["variant"] == "timescale"
            hyper = conn.execute(
                "SELECT compression_enabled FROM timescaledb_information.hypertables "
                "WHERE hypertable_name = 'telemetry'"
            ).fetchone()
            assert hyper["compression_enabled"] is True
            jobs = conn.execute(
                "SELECT count(*) AS n FROM timescaledb_information.jobs "
                "WHERE hypertable_name = 'telemetry' AND proc_name = 'policy_compression'"
            ).fetchone()
            assert jobs["n"] == 1
            assert ensure_partitions(conn, 7, 35) == 0
            sync_product_models(conn)
            device = conn.execute(
                "INSERT INTO devices (uid, serial, model_id) VALUES ('t1', 'SN-t1', 'ev') "
                "RETURNING id"
            ).fetchone()["id"]
            slots = ensure_slots(conn, builtin_models()["ev"])
            now = datetime.now(UTC)
            row = TelemetryRow(device, now, 1, now, slots.encode({"charging": True, "soc_pct": 5}))
            with conn.transaction():
                assert len(insert_telemetry(conn, [row, row])) == 1
            vals = conn.execute("SELECT vals FROM telemetry").fetchone()["vals"]
            assert slots.decode(vals) == {"charging": True, "soc_pct": 5.0}
    finally:
        with connect(TIMESCALE_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
