"""seed_user: the demo's way to create logins, usable from synchronous code."""

from __future__ import annotations

import pyotp
from fastapi.testclient import TestClient

from api.seed import seed_user
from app.settings import Settings
from tests.api.conftest import PASSWORD, insert_customer
from tests.api.test_login import login


def test_seeded_operator_and_customer_can_log_in(
    api: TestClient, api_settings: Settings, db: object
) -> None:
    secret = pyotp.random_base32()
    operator = seed_user(
        api_settings, role="operator", email="op@demo.test", password=PASSWORD, totp_secret=secret
    )
    assert operator["created"] is True
    again = seed_user(api_settings, role="operator", email="op@demo.test", password=PASSWORD)
    assert again == {**operator, "created": False}
    customer_id = insert_customer(db)
    seed_user(
        api_settings,
        role="customer",
        email="taro@demo.test",
        password=PASSWORD,
        customer_id=customer_id,
        display_name="Taro",
    )
    challenge = login(api, "op@demo.test").json()
    assert challenge["status"] == "mfa_required"
    verified = api.post(
        "/api/v1/auth/mfa/verify",
        json={"code": pyotp.TOTP(secret).now()},
        headers={"Authorization": f"Bearer {challenge['mfa_token']}"},
    )
    assert verified.status_code == 200
    assert login(api, "taro@demo.test").json()["status"] == "ok"
