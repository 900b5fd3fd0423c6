"""Smoke runs of the ingest and layout benchmarks: tiny loads, real services, JSON shape."""

from __future__ import annotations

import json

import pytest

from bench.ingest_bench import run_ingest_bench
from bench.layout_bench import run_layout_bench

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5

REQUIRED = {
    "msgs_per_s",
    "points_per_s",
    "published",
    "stored",
    "lost",
    "duplicates_stored",
    "p50_ms",
    "p99_ms",
    "ingest_cpu_pct",
    "ingest_rss_mb",
    "generator_ceiling_msgs_per_s",
}


def test_ingest_bench_small_run_loses_nothing(database_url, mqtt_url):
    result = run_ingest_bench(
        database_url,
        mqtt_url,
        duration_s=2.0,
        rate=150.0,
        publishers=2,
        devices=20,
        ceiling_s=1.0,
    )
    assert set(result) >= REQUIRED
    json.dumps(result)
    assert result["published"] > 100
    assert result["lost"] == 0 and result["duplicates_stored"] == 0
    assert result["stored"] == result["published"]
    assert result["generator_ceiling_msgs_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]


def test_layout_bench_compares_all_layouts(postgres_admin_url):
    result = run_layout_bench(postgres_admin_url, messages=500, devices=10, rounds=1)
    layouts = result["layouts"]
    assert set(layouts) == {"narrow", "jsonb", "float8_array"}
    for row in layouts.values():
        assert row["msgs_per_s"] > 0 and row["bytes_per_point_total"] > 0
