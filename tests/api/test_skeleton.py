"""The app starts on the real database, serves health and metrics, and knows its principals."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import TestUser


def test_health_reports_database_and_broker(api: TestClient) -> None:
    response = api.get("/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_metrics_are_prometheus_text(api: TestClient) -> None:
    api.get("/health")
    response = api.get("/metrics")
    assert response.status_code == 200
    assert "kizuna_api_requests_total" in response.text


def test_fixture_users_have_working_sessions(
    api: TestClient, operator: TestUser, customer_a: TestUser
) -> None:
    response = api.post("/api/v1/auth/logout", headers=operator.headers)
    assert response.status_code == 204
    again = api.post("/api/v1/auth/logout", headers=operator.headers)
    assert again.status_code == 401
    assert again.headers["content-type"].startswith("application/problem+json")
    assert api.post("/api/v1/auth/logout", headers=customer_a.headers).status_code == 204
