"""Personal data: encrypted at rest, masked for support, erased on request, keys rotated."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from fastapi.testclient import TestClient

from api.accounts.privacy import rotate_personal_data
from api.app import create_app
from app.settings import Settings
from store.encryption import FieldCipher
from tests.api.conftest import PASSWORD, TestUser
from tests.api.test_login import login


def test_personal_data_is_encrypted_at_rest(api: TestClient, customer_a: TestUser, db: Any) -> None:
    raw = db.execute("SELECT * FROM users WHERE id = %s", (customer_a.id,)).fetchone()
    dump = b"".join(
        bytes(v) if isinstance(v, bytes | memoryview) else str(v).encode() for v in raw.values()
    )
    assert customer_a.email.encode() not in dump
    assert b"Test customer" not in dump


def test_support_sees_masked_personal_data_operators_see_it_all(
    api: TestClient, operator: TestUser, support: TestUser, customer_a: TestUser
) -> None:
    url = f"/api/v1/users/{customer_a.public_id}"
    masked = api.get(url, headers=support.headers).json()
    full = api.get(url, headers=operator.headers).json()
    assert full["email"] == customer_a.email
    assert masked["email"] != customer_a.email and "•••" in masked["email"]
    assert masked["display_name"] == "T•••"
    listed = api.get("/api/v1/users", headers=support.headers).json()["items"]
    others = [u for u in listed if u["id"] != support.public_id]
    assert others and all("•••" in u["email"] for u in others)


def test_erasure_removes_personal_data_and_detaches_devices(
    probe_api: TestClient, operator: TestUser, customer_a: TestUser, device_a: str, db: Any
) -> None:
    public_id = db.execute(
        "SELECT public_id FROM customers WHERE id = %s", (customer_a.customer_id,)
    ).fetchone()["public_id"]
    db.execute(
        "INSERT INTO feed_posts (customer_id, kind, severity, language, title, body) "
        "VALUES (%s, 'ev.charge_complete', 'info', 'en', 'Charged', 'Hi Aiko, I am charged')",
        (customer_a.customer_id,),
    )
    url = f"/api/v1/privacy/customers/{public_id}/erase"
    response = probe_api.post(url, headers=operator.headers)
    assert response.status_code == 200
    posts = db.execute(
        "SELECT count(*) AS n FROM feed_posts WHERE customer_id = %s", (customer_a.customer_id,)
    ).fetchone()
    assert posts["n"] == 0
    assert response.json() == {"devices_detached": 1, "accounts_closed": 1}
    customer = db.execute(
        "SELECT * FROM customers WHERE id = %s", (customer_a.customer_id,)
    ).fetchone()
    assert customer["erased_at"] is not None
    assert all(
        customer[c] is None
        for c in ("name_enc", "email_enc", "phone_enc", "address_enc", "email_index")
    )
    user = db.execute("SELECT * FROM users WHERE id = %s", (customer_a.id,)).fetchone()
    assert all(
        user[c] is None
        for c in ("email_enc", "email_index", "phone_enc", "display_name_enc", "password_hash")
    )
    assert probe_api.get("/api/v1/me", headers=customer_a.headers).status_code == 401
    assert login(probe_api, customer_a.email).status_code == 401
    active = db.execute(
        "SELECT count(*) AS n FROM device_ownerships WHERE customer_id = %s AND ended_at IS NULL",
        (customer_a.customer_id,),
    ).fetchone()
    assert active["n"] == 0
    assert probe_api.post(url, headers=operator.headers).status_code == 404
    events = probe_api.get(
        "/api/v1/audit", params={"action": "customer.erased"}, headers=operator.headers
    ).json()["items"]
    # The erasure, then the second attempt on a customer who is gone (newest first).
    assert [(e["target_id"], e["outcome"]) for e in events] == [
        (str(public_id), "denied"),
        (str(public_id), "success"),
    ]


def test_customer_can_forget_themself_after_reauthentication(
    api: TestClient, customer_a: TestUser, db: Any
) -> None:
    wrong = api.post(
        "/api/v1/privacy/forget-me", json={"password": "not mine"}, headers=customer_a.headers
    )
    assert wrong.status_code == 403
    ok = api.post(
        "/api/v1/privacy/forget-me", json={"password": PASSWORD}, headers=customer_a.headers
    )
    assert ok.status_code == 200
    assert api.get("/api/v1/me", headers=customer_a.headers).status_code == 401


def test_key_rotation_reseals_everything_and_keeps_logins_working(
    api_settings: Settings, customer_a: TestUser, db: Any
) -> None:
    old_key = api_settings.data_encryption_key.get_secret_value()
    new_key = base64.b64encode(secrets.token_bytes(32)).decode()
    rotated = api_settings.model_copy(
        update={
            "data_encryption_key": type(api_settings.data_encryption_key)(new_key),
            "data_encryption_old_keys": [type(api_settings.data_encryption_key)(old_key)],
        }
    )
    cipher = FieldCipher.from_encoded(new_key, [old_key])
    with TestClient(create_app(rotated)) as client:
        # Before rotation, the blind index (keyed by the current key) cannot find the account.
        assert login(client, customer_a.email).status_code == 401
        counts = rotate_personal_data(db, cipher)
        assert counts["users"] >= 1
        assert login(client, customer_a.email).status_code == 200
    new_only = FieldCipher.from_encoded(new_key)
    row = db.execute("SELECT email_enc FROM users WHERE id = %s", (customer_a.id,)).fetchone()
    assert new_only.open(bytes(row["email_enc"]), "users.email_enc") == customer_a.email
    assert rotate_personal_data(db, cipher) == {"users": 0, "customers": 0}
