"""API keys: created by operators, shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import TestUser

KEYS = "/api/v1/api-keys"


def make_key(api: TestClient, operator: TestUser, scopes: list[str]) -> dict[str, Any]:
    """Create a key and return the response body."""
    response = api.post(
        KEYS, json={"name": "warehouse", "scopes": scopes}, headers=operator.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_key_is_shown_once_and_stored_hashed(api: TestClient, operator: TestUser, db: Any) -> None:
    created = make_key(api, operator, ["read"])
    key = created["key"]
    assert key.startswith(f"kz_{created['prefix']}_")
    listed = api.get(KEYS, headers=operator.headers).json()
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
    row = db.execute("SELECT key_hash FROM api_keys").fetchone()
    assert key.encode() not in bytes(row["key_hash"])


def test_read_key_reads_but_cannot_write(probe_api: TestClient, operator: TestUser) -> None:
    key = make_key(probe_api, operator, ["read"])["key"]
    headers = {"Authorization": f"Bearer {key}"}
    assert probe_api.get("/api/v1/probe/staff", headers=headers).json() == {"role": "integration"}
    assert probe_api.post("/api/v1/probe/staff", headers=headers).status_code == 403


def test_write_key_writes(probe_api: TestClient, operator: TestUser) -> None:
    key = make_key(probe_api, operator, ["write"])["key"]
    headers = {"Authorization": f"Bearer {key}"}
    assert probe_api.post("/api/v1/probe/staff", headers=headers).status_code == 200
    assert probe_api.get("/api/v1/probe/staff", headers=headers).status_code == 403


def test_revoked_or_tampered_key_is_401(probe_api: TestClient, operator: TestUser) -> None:
    created = make_key(probe_api, operator, ["read"])
    headers = {"Authorization": f"Bearer {created['key']}"}
    tampered = {"Authorization": f"Bearer {created['key'][:-2]}xx"}
    unknown = {"Authorization": "Bearer kz_AAAAAAAAAAAA_secret"}
    assert probe_api.get("/api/v1/probe/staff", headers=tampered).status_code == 401
    assert probe_api.get("/api/v1/probe/staff", headers=unknown).status_code == 401
    revoke = probe_api.delete(f"{KEYS}/{created['id']}", headers=operator.headers)
    assert revoke.status_code == 204
    assert probe_api.get("/api/v1/probe/staff", headers=headers).status_code == 401
    again = probe_api.delete(f"{KEYS}/{created['id']}", headers=operator.headers)
    assert again.status_code == 404


def test_expired_key_is_401(probe_api: TestClient, operator: TestUser, db: Any) -> None:
    created = make_key(probe_api, operator, ["read"])
    db.execute("UPDATE api_keys SET expires_at = now() - interval '1 second'")
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert probe_api.get("/api/v1/probe/staff", headers=headers).status_code == 401


def test_only_operators_manage_keys(
    api: TestClient, support: TestUser, customer_a: TestUser
) -> None:
    for user in (support, customer_a):
        response = api.post(KEYS, json={"name": "x", "scopes": ["read"]}, headers=user.headers)
        assert response.status_code == 403


def test_unknown_scope_is_422(api: TestClient, operator: TestUser) -> None:
    response = api.post(KEYS, json={"name": "x", "scopes": ["admin"]}, headers=operator.headers)
    assert response.status_code == 422
