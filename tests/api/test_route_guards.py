"""Every route, including those other packages add, needs a full session and the right role.

The routes are enumerated from the app itself, so a new router is covered without editing
this file: it fails if a route has no role guard, lets anonymous, forged or MFA-pending
callers in, admits a role its guard excludes, or shows customer B a device of customer A.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routers.auth import PUBLIC_ROUTES
from api.security.tokens import issue_token
from tests.api.conftest import TestUser
from tests.api.routes import RouteInfo, all_routes
from tests.conftest import make_test_settings

OPERATIONAL = frozenset(
    {"/health", "/metrics", "/api/v1/openapi.json", "/api/v1/docs", "/docs/oauth2-redirect"}
)
# Which roles each guard refuses (403). API keys are tested separately (scopes).
REFUSED_BY = {
    "operator": ("support", "customer_b"),
    "staff": ("customer_b",),
    "customer": ("operator", "support"),
    "user": (),
    "person": (),
    "enrolling": (),
}


def _routes() -> list[RouteInfo]:
    settings = make_test_settings(
        "postgresql://x@127.0.0.1/x", "mqtt://127.0.0.1:1", "kz", Path("/tmp")
    )
    return [r for r in all_routes(create_app(settings)) if r.path not in OPERATIONAL]


ROUTES = _routes()
PROTECTED = [r for r in ROUTES if r.path not in PUBLIC_ROUTES]


def _id(route: RouteInfo) -> str:
    return f"{route.method} {route.path}"


def test_the_walk_sees_the_known_routes() -> None:
    paths = {r.path for r in ROUTES}
    assert {"/api/v1/auth/login", "/api/v1/me", "/api/v1/audit", "/api/v1/users"} <= paths


@pytest.mark.parametrize("route", PROTECTED, ids=_id)
def test_route_has_a_role_guard(route: RouteInfo) -> None:
    assert route.guards, f"{_id(route)} has no role guard (use OperatorOnly, StaffOnly, ...)"


def test_routes_refuse_anonymous_forged_and_pending_callers(
    api: TestClient, operator: TestUser, device_a: str, api_settings: Any
) -> None:
    secret = api_settings.secret_key.get_secret_value()
    pending = issue_token(secret, "mfa", operator.public_id, 300)
    forged = issue_token(
        "another-secret-key-that-is-long-enough-0123",
        "access",
        operator.public_id,
        300,
        session=operator.refresh_token.split(".")[0],
    )
    callers: dict[str, dict[str, str]] = {
        "anonymous": {},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "mfa_pending": {"Authorization": f"Bearer {pending}"},
        "forged": {"Authorization": f"Bearer {forged}"},
        "basic": {"Authorization": "Basic b3A6cGFzcw=="},
    }
    failures = []
    for route in PROTECTED:
        for caller, headers in callers.items():
            response = api.request(route.method, route.url(device_a), headers=headers, json={})
            if response.status_code != 401:
                failures.append(f"{_id(route)} as {caller}: {response.status_code}")
    assert not failures, failures


def test_routes_refuse_roles_their_guard_excludes(
    api: TestClient, operator: TestUser, support: TestUser, customer_b: TestUser, device_a: str
) -> None:
    users = {"operator": operator, "support": support, "customer_b": customer_b}
    failures = []
    for route in PROTECTED:
        refused = {role for guard in route.guards for role in REFUSED_BY[guard]}
        for role in sorted(refused):
            response = api.request(
                route.method, route.url(device_a), headers=users[role].headers, json={}
            )
            if response.status_code != 403:
                failures.append(f"{_id(route)} as {role}: {response.status_code}")
    assert not failures, failures


def test_device_routes_hide_other_customers_devices(
    api: TestClient, customer_b: TestUser, device_a: str
) -> None:
    failures = []
    for route in [r for r in PROTECTED if r.owned_device]:
        response = api.request(
            route.method, route.url(device_a), headers=customer_b.headers, json={}
        )
        if response.status_code != 404:
            failures.append(f"{_id(route)}: {response.status_code}")
    assert not failures, failures


def test_api_keys_never_reach_operator_customer_or_account_routes(
    api: TestClient, operator: TestUser, device_a: str
) -> None:
    created = api.post(
        "/api/v1/api-keys",
        headers=operator.headers,
        json={"name": "walk", "scopes": ["read", "write"]},
    )
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    failures = []
    for route in PROTECTED:
        if route.guards & {"operator", "customer", "person", "enrolling"}:
            response = api.request(route.method, route.url(device_a), headers=headers, json={})
            if response.status_code not in (401, 403):
                failures.append(f"{_id(route)}: {response.status_code}")
    assert not failures, failures


def test_openapi_declares_bearer_auth_on_every_protected_operation() -> None:
    settings = make_test_settings(
        "postgresql://x@127.0.0.1/x", "mqtt://127.0.0.1:1", "kz", Path("/tmp")
    )
    schema = create_app(settings).openapi()
    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if path not in PUBLIC_ROUTES | OPERATIONAL
        and {"HTTPBearer": []} not in operation.get("security", [])
    ]
    assert not missing, missing
