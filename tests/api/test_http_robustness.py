"""Hostile HTTP: huge bodies, malformed input, unbounded lists, errors that must not leak."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from api.app import create_app
from app.embedded import free_port
from app.settings import Settings
from store.db import connect, database_name
from tests.api.conftest import TestUser

PROBLEM = "application/problem+json"


def test_100_mb_body_is_413_without_reading_it(api: TestClient) -> None:
    response = api.post(
        "/api/v1/auth/login",
        content=b"{}",
        headers={"Content-Length": str(100 * 1024 * 1024), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


def test_streamed_body_over_the_limit_is_413(api: TestClient, api_settings: Settings) -> None:
    limit = api_settings.api.max_body_bytes

    def chunks() -> Iterator[bytes]:
        yield b'{"email": "'
        for _ in range(limit // 65536 + 2):
            yield b"a" * 65536
        yield b'"}'

    response = api.post(
        "/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"email": "a@b.co", "password": "x"',
        b'{"email": "a\\u0000@b.co", "password": "pw"}',
        b'{"email": "\\ud800@b.co", "password": "pw"}',
        b'{"email": "a@b.co", "password": "\\udfff"}',
        b'{"email": 12, "password": ["x"]}',
        b"[]",
        b'{"email": "a@b.co", "password": "pw", "role": "operator"}',
        b'{"email": "a@b.co", "password": 1e999}',
        b"\xff\xfe\xfd",
    ],
)
def test_malformed_input_is_422_never_500(api: TestClient, raw: bytes) -> None:
    response = api.post(
        "/api/v1/auth/login", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    # Submitted values are not echoed back (they may be secrets).
    assert "pw" not in json.dumps(response.json()["errors"])


def test_mass_assignment_of_role_owner_or_flags_is_422(
    api: TestClient, operator: TestUser, customer_a: TestUser
) -> None:
    create = {"role": "support", "email": "s2@example.com", "password": "long enough password"}
    for extra in (
        {"totp_enabled": True},
        {"disabled": False},
        {"id": "x"},
        {"password_hash": "$argon2id$..."},
    ):
        response = api.post("/api/v1/users", json={**create, **extra}, headers=operator.headers)
        assert response.status_code == 422, extra
    change = {"new_phone": "+81 90 1111 2222", "password": "whatever", "role": "operator"}
    assert api.post("/api/v1/me/phone", json=change, headers=customer_a.headers).status_code == 422
    key = {"name": "x", "scopes": ["read"], "role": "operator"}
    assert api.post("/api/v1/api-keys", json=key, headers=operator.headers).status_code == 422


def test_limits_are_capped(probe_api: TestClient, customer_a: TestUser) -> None:
    h = customer_a.headers
    assert probe_api.get("/api/v1/probe/numbers?limit=1000000", headers=h).status_code == 422
    assert probe_api.get("/api/v1/probe/numbers?limit=0", headers=h).status_code == 422
    default = probe_api.get("/api/v1/probe/numbers", headers=h).json()
    assert len(default["items"]) == 50 and default["next_cursor"]


def test_cursor_pagination_walks_every_item_once(
    probe_api: TestClient, customer_a: TestUser
) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 37, "sort": "-n"}
        if cursor:
            params["cursor"] = cursor
        page = probe_api.get(
            "/api/v1/probe/numbers", params=params, headers=customer_a.headers
        ).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(120, 0, -1))


def test_tampered_cursor_is_422(probe_api: TestClient, customer_a: TestUser) -> None:
    page = probe_api.get("/api/v1/probe/numbers", headers=customer_a.headers).json()
    cursor = page["next_cursor"]
    bad = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    for value in (bad, "!!!", "x" * 600):
        response = probe_api.get(
            "/api/v1/probe/numbers", params={"cursor": value}, headers=customer_a.headers
        )
        assert response.status_code == 422, value


def test_sort_by_an_arbitrary_column_is_422(
    probe_api: TestClient, operator: TestUser, customer_a: TestUser
) -> None:
    for sort in ("password_hash", "n; DROP TABLE users", "-email", ""):
        response = probe_api.get(
            "/api/v1/probe/numbers", params={"sort": sort}, headers=customer_a.headers
        )
        assert response.status_code == 422, sort
    users = probe_api.get(
        "/api/v1/users", params={"sort": "password_hash"}, headers=operator.headers
    )
    assert users.status_code == 422


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from after to"),
        ({"from": "2026-01-01T00:00:00"}, "naive datetime"),
        ({"from": "2020-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "range too long"),
        ({"from": "yesterday"}, "not a datetime"),
    ],
)
def test_bad_time_ranges_are_422(
    probe_api: TestClient, operator: TestUser, params: dict[str, str], why: str
) -> None:
    response = probe_api.get("/api/v1/probe/numbers", params=params, headers=operator.headers)
    assert response.status_code == 422, why
    audit = probe_api.get("/api/v1/audit", params=params, headers=operator.headers)
    assert audit.status_code == 422, why


def test_unhandled_error_is_generic_500_without_personal_data(
    probe_api: TestClient, customer_a: TestUser
) -> None:
    with capture_logs() as logs:
        response = probe_api.get("/api/v1/probe/boom", headers=customer_a.headers)
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.text
    assert "taro" not in body and "Traceback" not in body and "RuntimeError" not in body
    logged = json.dumps(logs, default=str)
    assert "api.unhandled_error" in logged
    metrics = probe_api.get("/metrics").text
    assert 'route="/api/v1/probe/boom",status="500"' in metrics
    assert "taro@example.com" not in logged and "1111" not in logged


def test_unknown_route_and_method_are_problem_json(api: TestClient, customer_a: TestUser) -> None:
    missing = api.get("/api/v1/nothing-here", headers=customer_a.headers)
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    wrong = api.put("/api/v1/auth/login", json={})
    assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM


def test_failed_logins_do_not_log_personal_data(api: TestClient, customer_a: TestUser) -> None:
    with capture_logs() as logs:
        api.post("/api/v1/auth/login", json={"email": customer_a.email, "password": "wrong one!"})
        api.post("/api/v1/auth/password-reset", json={"email": customer_a.email})
    logged = json.dumps(logs, default=str)
    assert customer_a.email not in logged and "wrong one!" not in logged


def test_health_is_503_when_the_broker_is_unreachable(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}"})
    with TestClient(create_app(settings)) as client:
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "unreachable"}


def test_health_and_requests_are_503_when_the_database_is_gone(
    api_settings: Settings, postgres_admin_url: str, customer_a: TestUser
) -> None:
    token = customer_a.access_token
    # A short connect timeout keeps the outage answers (and this test) quick.
    settings = api_settings.model_copy(
        update={"store": api_settings.store.model_copy(update={"connect_timeout_s": 1.0})}
    )
    admin = connect(postgres_admin_url, autocommit=True)
    with admin, TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        assert api_settings.database_url is not None
        name = database_name(api_settings.database_url)
        # Refuse new connections and cut the pool's existing ones.
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        try:
            response = client.get("/health")
            assert response.status_code == 503
            assert response.json()["database"] == "unreachable"
            # Ordinary requests say "try again" (503), never 401 or a bare 500.
            me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 503, me.text
            assert me.headers["content-type"] == PROBLEM and "Retry-After" in me.headers
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
