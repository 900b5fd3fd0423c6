"""The audit log: append-only, written for security events and changes, queryable by operators."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import TestUser
from tests.api.test_login import login


def actions(api: TestClient, operator: TestUser, **params: str) -> list[dict[str, Any]]:
    """Audit events visible to an operator."""
    response = api.get("/api/v1/audit", params={"limit": "200", **params}, headers=operator.headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_audit_log_refuses_update_delete_and_truncate(api: TestClient, db: Any) -> None:
    db.execute("INSERT INTO audit_log (actor_kind, action) VALUES ('system', 'test.event')")
    for statement in (
        "UPDATE audit_log SET action = 'x.y'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(statement)
    assert db.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"] >= 1


def test_logins_and_failures_are_recorded_without_personal_data(
    api: TestClient, operator: TestUser, customer_a: TestUser, db: Any
) -> None:
    login(api, customer_a.email)
    login(api, customer_a.email, "wrong password!")
    events = actions(api, operator, action="auth.login")
    outcomes = {(e["actor_id"], e["outcome"]) for e in events}
    assert (customer_a.public_id, "success") in outcomes
    assert (customer_a.public_id, "failure") in outcomes
    dump = str(db.execute("SELECT * FROM audit_log").fetchall())
    assert customer_a.email not in dump


def test_state_changes_and_personal_data_reads_are_recorded(
    api: TestClient, operator: TestUser, support: TestUser
) -> None:
    api.get(f"/api/v1/users/{support.public_id}", headers=operator.headers)
    api.post("/api/v1/api-keys", json={"name": "n", "scopes": ["read"]}, headers=operator.headers)
    events = actions(api, operator, actor=operator.public_id)
    routes = {(e["action"], e["details"].get("route")) for e in events}
    assert ("http.get", "/api/v1/users/{public_id}") in routes
    assert ("http.post", "/api/v1/api-keys") in routes
    assert "api_key.create" in {e["action"] for e in events}


def test_mfa_changes_are_recorded(api: TestClient, operator: TestUser, make_user: Any) -> None:
    customer = make_user("customer", totp=True)
    api.post(
        "/api/v1/me/mfa/disable",
        json={"password": customer.password, "code": customer.code()},
        headers=customer.headers,
    )
    assert [e["actor_id"] for e in actions(api, operator, action="mfa.disable")] == [
        customer.public_id
    ]


def test_denied_attempts_are_recorded(
    api: TestClient, operator: TestUser, customer_a: TestUser
) -> None:
    api.post("/api/v1/api-keys", json={"name": "n", "scopes": ["read"]}, headers=customer_a.headers)
    denied = [
        e for e in actions(api, operator, actor=customer_a.public_id) if e["outcome"] == "denied"
    ]
    assert denied and denied[0]["details"]["status"] == 403


def test_only_operators_query_the_audit_log(
    api: TestClient, support: TestUser, customer_a: TestUser
) -> None:
    for user in (support, customer_a):
        assert api.get("/api/v1/audit", headers=user.headers).status_code == 403


def test_audit_query_pages_through_everything(api: TestClient, operator: TestUser, db: Any) -> None:
    for i in range(7):
        db.execute(
            "INSERT INTO audit_log (actor_kind, action, target_id) "
            "VALUES ('system', 'test.page', %s)",
            (str(i),),
        )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"action": "test.page", "limit": "3", "sort": "at"}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/audit", params=params, headers=operator.headers).json()
        seen += [e["target_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [str(i) for i in range(7)]


def test_record_sync_is_usable_by_other_packages(db: Any) -> None:
    from api.audit import record_sync

    record_sync(db, "rule.update", target_kind="rule", target_id="42", details={"field": "x"})
    row = db.execute(
        "SELECT actor_kind, action, target_id FROM audit_log WHERE action = 'rule.update'"
    ).fetchone()
    assert row == {"actor_kind": "system", "action": "rule.update", "target_id": "42"}
