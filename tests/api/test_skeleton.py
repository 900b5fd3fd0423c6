"""The app starts on the real database, serves health and metrics, and knows its principals."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import StaffOnly, SyncDbConn
from app.settings import Settings
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


probe_router = APIRouter()


@probe_router.get("/probe-sync")
def probe_sync(principal: StaffOnly, conn: SyncDbConn) -> dict[str, int]:
    row = conn.execute("SELECT 1 AS one").fetchone()
    assert row is not None
    return {"one": row["one"]}


def test_sync_connection_dependency_serves_def_routes(
    api_settings: Settings, operator: TestUser, api: TestClient
) -> None:
    app = create_app(api_settings)
    app.include_router(probe_router)
    with TestClient(app) as client:
        assert client.get("/probe-sync").status_code == 401
        assert client.get("/probe-sync", headers=operator.headers).json() == {"one": 1}
