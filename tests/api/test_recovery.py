"""Password reset and contact changes: the 7pay takeover routes stay closed."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import PASSWORD, SmtpSink, TestUser, body_text
from tests.api.test_login import bearer, login

RESET = "/api/v1/auth/password-reset"
NEW_PASSWORD = "a brand new passphrase 2"


def reset_token(mail: SmtpSink, address: str) -> str:
    """The token in the last reset mail sent to `address`."""
    messages = [m for m in mail.to(address) if "Reset" in m["Subject"]]
    assert messages, f"no reset mail to {address}"
    body = body_text(messages[-1])
    match = re.search(r"token=([A-Za-z0-9_\-]+)", body)
    assert match
    return match.group(1)


def test_reset_goes_only_to_the_address_on_record(
    api: TestClient, customer_a: TestUser, mail: SmtpSink
) -> None:
    # Anything beyond the one identifying field is refused outright (no second address).
    smuggled = api.post(RESET, json={"email": customer_a.email, "to": "evil@attacker.test"})
    assert smuggled.status_code == 422
    listed = api.post(RESET, json={"email": [customer_a.email, "evil@attacker.test"]})
    assert listed.status_code == 422
    # A different spelling finds the account, but the mail goes to the stored address.
    response = api.post(RESET, json={"email": customer_a.email.upper()})
    assert response.status_code == 202
    assert mail.to(customer_a.email)
    assert all(customer_a.email in m["X-Envelope-To"] for m in mail.messages)
    assert not mail.to("evil@attacker.test")


def test_reset_for_unknown_address_answers_the_same_and_sends_nothing(
    api: TestClient, mail: SmtpSink
) -> None:
    response = api.post(RESET, json={"email": "nobody@example.com"})
    assert response.status_code == 202 and response.json() == {"status": "accepted"}
    assert mail.messages == []


def test_reset_is_single_use_and_ends_every_session(
    api: TestClient, customer_a: TestUser, mail: SmtpSink
) -> None:
    other = login(api, customer_a.email).json()
    api.post(RESET, json={"email": customer_a.email})
    token = reset_token(mail, customer_a.email)
    done = api.post(f"{RESET}/confirm", json={"token": token, "new_password": NEW_PASSWORD})
    assert done.status_code == 204
    for access in (customer_a.access_token, other["access_token"]):
        assert api.get("/api/v1/me", headers=bearer(access)).status_code == 401
    refresh = api.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refresh.status_code == 401
    reuse = api.post(f"{RESET}/confirm", json={"token": token, "new_password": "yet another one!"})
    assert reuse.status_code == 401
    assert login(api, customer_a.email).status_code == 401
    assert login(api, customer_a.email, NEW_PASSWORD).status_code == 200
    notices = [m for m in mail.to(customer_a.email) if "was reset" in m["Subject"]]
    assert len(notices) == 1


def test_expired_reset_token_is_refused(
    api: TestClient, customer_a: TestUser, mail: SmtpSink, db: Any
) -> None:
    api.post(RESET, json={"email": customer_a.email})
    token = reset_token(mail, customer_a.email)
    db.execute("UPDATE password_resets SET expires_at = now() - interval '1 second'")
    response = api.post(f"{RESET}/confirm", json={"token": token, "new_password": NEW_PASSWORD})
    assert response.status_code == 401
    assert login(api, customer_a.email).status_code == 200


def test_reset_token_is_stored_hashed(
    api: TestClient, customer_a: TestUser, mail: SmtpSink, db: Any
) -> None:
    api.post(RESET, json={"email": customer_a.email})
    token = reset_token(mail, customer_a.email)
    row = db.execute("SELECT token_hash FROM password_resets").fetchone()
    assert token.encode() not in bytes(row["token_hash"])


def test_reset_does_not_bypass_totp(api: TestClient, operator: TestUser, mail: SmtpSink) -> None:
    api.post(RESET, json={"email": operator.email})
    token = reset_token(mail, operator.email)
    api.post(f"{RESET}/confirm", json={"token": token, "new_password": NEW_PASSWORD})
    assert login(api, operator.email, NEW_PASSWORD).json()["status"] == "mfa_required"


def test_reset_requests_are_throttled_alike_for_known_and_unknown(
    api: TestClient, customer_a: TestUser
) -> None:
    for email in (customer_a.email, "ghost-reset@example.com"):
        statuses = [api.post(RESET, json={"email": email}).status_code for _ in range(6)]
        assert statuses == [202] * 5 + [429], email


def test_new_password_must_be_long_enough(
    api: TestClient, customer_a: TestUser, mail: SmtpSink
) -> None:
    api.post(RESET, json={"email": customer_a.email})
    token = reset_token(mail, customer_a.email)
    short = api.post(f"{RESET}/confirm", json={"token": token, "new_password": "short"})
    assert short.status_code == 422


def test_email_change_needs_reauthentication_and_tells_the_old_address(
    api: TestClient, make_user: Any, mail: SmtpSink, db: Any
) -> None:
    user = make_user("customer", totp=True)
    target = "new-home@example.com"
    no_password = api.post("/api/v1/me/email", json={"new_email": target}, headers=user.headers)
    assert no_password.status_code == 422
    wrong = api.post(
        "/api/v1/me/email",
        json={"new_email": target, "password": "not my password", "code": user.code()},
        headers=user.headers,
    )
    assert wrong.status_code == 403
    no_code = api.post(
        "/api/v1/me/email", json={"new_email": target, "password": PASSWORD}, headers=user.headers
    )
    assert no_code.status_code == 403
    assert login(api, user.email).status_code == 200  # nothing changed yet
    ok = api.post(
        "/api/v1/me/email",
        json={"new_email": target, "password": PASSWORD, "code": user.code()},
        headers=user.headers,
    )
    assert ok.status_code == 204, ok.text
    old_notices = [m for m in mail.to(user.email) if "changed" in m["Subject"]]
    assert len(old_notices) == 1
    assert target not in body_text(old_notices[0])  # masked
    assert login(api, user.email).status_code == 401
    assert login(api, target).json()["status"] == "mfa_required"
    # The customer record follows the verified change.
    index = db.execute(
        "SELECT email_index FROM customers WHERE id = %s", (user.customer_id,)
    ).fetchone()["email_index"]
    users_index = db.execute("SELECT email_index FROM users WHERE id = %s", (user.id,)).fetchone()[
        "email_index"
    ]
    assert bytes(index) == bytes(users_index)


def test_email_change_ends_other_sessions_and_refuses_taken_addresses(
    api: TestClient, customer_a: TestUser, customer_b: TestUser
) -> None:
    other = login(api, customer_a.email).json()
    taken = api.post(
        "/api/v1/me/email",
        json={"new_email": customer_b.email, "password": PASSWORD},
        headers=customer_a.headers,
    )
    assert taken.status_code == 409
    ok = api.post(
        "/api/v1/me/email",
        json={"new_email": "a2@example.com", "password": PASSWORD},
        headers=customer_a.headers,
    )
    assert ok.status_code == 204
    assert api.get("/api/v1/me", headers=customer_a.headers).status_code == 200
    assert api.get("/api/v1/me", headers=bearer(other["access_token"])).status_code == 401


def test_phone_change_needs_reauthentication(
    api: TestClient, customer_a: TestUser, mail: SmtpSink
) -> None:
    wrong = api.post(
        "/api/v1/me/phone",
        json={"new_phone": "+81 90 1234 5678", "password": "nope"},
        headers=customer_a.headers,
    )
    assert wrong.status_code == 403
    ok = api.post(
        "/api/v1/me/phone",
        json={"new_phone": "+81 90 1234 5678", "password": PASSWORD},
        headers=customer_a.headers,
    )
    assert ok.status_code == 204
    assert api.get("/api/v1/me", headers=customer_a.headers).json()["phone"] == "+81 90 1234 5678"
    assert [m for m in mail.to(customer_a.email) if "phone" in m["Subject"]]


def test_reauthentication_failures_are_throttled(api: TestClient, customer_a: TestUser) -> None:
    body = {"new_phone": "+81 90 0000 0000", "password": "wrong wrong"}
    statuses = [
        api.post("/api/v1/me/phone", json=body, headers=customer_a.headers).status_code
        for _ in range(6)
    ]
    assert statuses == [403] * 5 + [429]


def test_password_change_keeps_this_session_and_ends_the_others(
    api: TestClient, customer_a: TestUser
) -> None:
    other = login(api, customer_a.email).json()
    wrong = api.post(
        "/api/v1/me/password",
        json={"password": "not it at all", "new_password": NEW_PASSWORD},
        headers=customer_a.headers,
    )
    assert wrong.status_code == 403
    response = api.post(
        "/api/v1/me/password",
        json={"password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=customer_a.headers,
    )
    assert response.status_code == 204
    assert api.get("/api/v1/me", headers=customer_a.headers).status_code == 200
    assert api.get("/api/v1/me", headers=bearer(other["access_token"])).status_code == 401
    assert login(api, customer_a.email, NEW_PASSWORD).status_code == 200
