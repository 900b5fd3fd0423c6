"""Account administration: operators create and page through accounts; roles stay as created."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import TestUser, insert_customer
from tests.api.test_login import login

USERS = "/api/v1/users"
NEW_PASSWORD = "a long enough passphrase"


def test_operator_creates_staff_who_must_enroll_totp(api: TestClient, operator: TestUser) -> None:
    created = api.post(
        USERS,
        json={"role": "support", "email": "new-support@example.com", "password": NEW_PASSWORD},
        headers=operator.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "support" and created.json()["totp_enabled"] is False
    status = login(api, "new-support@example.com", NEW_PASSWORD).json()["status"]
    assert status == "mfa_enrollment_required"
    again = api.post(
        USERS,
        json={"role": "support", "email": "NEW-support@example.com", "password": NEW_PASSWORD},
        headers=operator.headers,
    )
    assert again.status_code == 409


def test_customer_accounts_need_an_existing_customer(
    api: TestClient, operator: TestUser, db: Any
) -> None:
    body = {"role": "customer", "email": "c@example.com", "password": NEW_PASSWORD}
    assert api.post(USERS, json=body, headers=operator.headers).status_code == 409
    missing = api.post(USERS, json={**body, "customer_id": 999999}, headers=operator.headers)
    assert missing.status_code == 404
    customer_id = insert_customer(db)
    ok = api.post(USERS, json={**body, "customer_id": customer_id}, headers=operator.headers)
    assert ok.status_code == 201 and ok.json()["customer_id"] == customer_id
    assert login(api, "c@example.com", NEW_PASSWORD).json()["status"] == "ok"


def test_users_page_through_without_repeats(
    api: TestClient, operator: TestUser, make_user: Any
) -> None:
    for _ in range(4):
        make_user("customer")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", "role": "customer"}
        if cursor:
            params["cursor"] = cursor
        page = api.get(USERS, params=params, headers=operator.headers).json()
        seen += [u["id"] for u in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 4
    ascending = api.get(
        USERS, params={"sort": "id", "limit": "200"}, headers=operator.headers
    ).json()["items"]
    descending = api.get(
        USERS, params={"sort": "-id", "limit": "200"}, headers=operator.headers
    ).json()["items"]
    assert [u["id"] for u in ascending] == [u["id"] for u in reversed(descending)]
