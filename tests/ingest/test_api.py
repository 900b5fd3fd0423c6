"""Ingest's operations routes through the real app: gaps, dead letters, quarantine, health."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from devices.protocol import Channel
from tests.api.conftest import TestUser
from tests.ingest.conftest import ago, register_devices, wait_until

pytestmark = pytest.mark.mqtt5  # the device-side test clients speak MQTT 5


def test_staff_see_gaps_dead_letters_and_quarantine(
    api: TestClient,
    operator: TestUser,
    support: TestUser,
    customer_a: TestUser,
    settings,
    start_ingest,
    make_device,
) -> None:
    uid = next(iter(register_devices(settings.database_url, "washing_machine", 1)))
    ingest = start_ingest()
    device = make_device(uid)
    device.reading(1, {"power_w": 1.0}, ago(30))
    device.reading(5, {"power_w": 5.0}, ago(20))
    device.reading(6, {"power_w": 6.0}, datetime(1970, 1, 1, tzinfo=UTC))
    device.raw(device.topic(Channel.TELEMETRY), b"not json")
    wait_until(lambda: ingest.worker.totals.messages == 4)

    gaps = api.get(f"/api/v1/ingest/gaps?device_uid={uid}", headers=support.headers)
    assert gaps.status_code == 200, gaps.text
    assert [(g["first_seq"], g["last_seq"], g["missing"]) for g in gaps.json()] == [(2, 4, 3)]
    letters = api.get("/api/v1/ingest/dead-letters?reason=invalid_json", headers=operator.headers)
    assert [(d["reason"], d["payload_preview"]) for d in letters.json()] == [
        ("invalid_json", "not json")
    ]
    counts = api.get("/api/v1/ingest/dead-letters/counts", headers=operator.headers)
    assert counts.json() == {"invalid_json": 1}
    held = api.get(f"/api/v1/ingest/quarantine?device_uid={uid}", headers=operator.headers)
    assert [(q["seq"], q["reason"]) for q in held.json()] == [(6, "clock_unset")]
    health = api.get("/api/v1/ingest/health", headers=operator.headers)
    assert health.status_code == 200 and health.json()["ok"] is True


def test_ingest_routes_refuse_customers_and_bad_queries(
    api: TestClient, operator: TestUser, customer_a: TestUser
) -> None:
    assert api.get("/api/v1/ingest/gaps", headers=customer_a.headers).status_code == 403
    assert api.get("/api/v1/ingest/dead-letters").status_code == 401
    bad = [
        "/api/v1/ingest/gaps?device_uid=nobody",
        "/api/v1/ingest/dead-letters?reason=whatever",
        "/api/v1/ingest/gaps?limit=100000",
        "/api/v1/ingest/dead-letters/counts?hours=0",
    ]
    codes = [api.get(url, headers=operator.headers).status_code for url in bad]
    assert codes == [404, 422, 422, 422]
