"""Login: argon2id, throttling without enumeration, TOTP (mandatory for staff), tokens."""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig
from api.security.tokens import issue_token
from app.settings import Settings
from tests.api.conftest import FAST_API_CONFIG, PASSWORD, TestUser

LOGIN = "/api/v1/auth/login"
VERIFY = "/api/v1/auth/mfa/verify"


def login(api: TestClient, email: str, password: str = PASSWORD) -> Any:
    """POST /auth/login."""
    return api.post(LOGIN, json={"email": email, "password": password})


def full_login(api: TestClient, user: TestUser) -> dict[str, Any]:
    """Password then TOTP; the token pair."""
    challenge = login(api, user.email).json()
    assert challenge["status"] == "mfa_required", challenge
    response = api.post(
        VERIFY,
        json={"code": user.code()},
        headers={"Authorization": f"Bearer {challenge['mfa_token']}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def test_password_is_stored_as_argon2id(api: TestClient, customer_a: TestUser, db: Any) -> None:
    row = db.execute("SELECT password_hash FROM users WHERE id = %s", (customer_a.id,)).fetchone()
    assert row["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in row["password_hash"]


def test_customer_without_totp_logs_in_with_password(api: TestClient, customer_a: TestUser) -> None:
    response = login(api, customer_a.email)
    assert response.status_code == 200
    tokens = response.json()
    assert tokens["status"] == "ok" and tokens["token_type"] == "bearer"
    me = api.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200 and me.json()["email"] == customer_a.email


def test_login_email_is_case_and_space_insensitive(api: TestClient, customer_a: TestUser) -> None:
    assert login(api, f"  {customer_a.email.upper()} ").status_code == 200


def test_wrong_password_and_unknown_user_look_the_same(
    api: TestClient, customer_a: TestUser
) -> None:
    wrong = login(api, customer_a.email, "wrong password!!")
    unknown = login(api, "nobody-here@example.com", "wrong password!!")
    assert wrong.status_code == unknown.status_code == 401
    body_wrong, body_unknown = wrong.json(), unknown.json()
    assert body_wrong == {**body_unknown, "instance": body_wrong["instance"]}
    assert wrong.headers["content-type"] == unknown.headers["content-type"]


def test_unknown_user_costs_the_same_hashing_work(api: TestClient, customer_a: TestUser) -> None:
    def median_ms(email: str) -> float:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            login(api, email, "wrong password!!")
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    # Five attempts each: all are hashed (the sixth would be throttled before hashing).
    known = median_ms(customer_a.email)
    unknown = median_ms("ghost@example.com")
    assert 0.33 < unknown / known < 3.0, (known, unknown)


def test_lockout_after_failures_is_429_for_known_and_unknown_alike(
    api: TestClient, customer_a: TestUser
) -> None:
    for email in (customer_a.email, "ghost-lock@example.com"):
        statuses = [login(api, email, "wrong password!!").status_code for _ in range(5)]
        assert statuses == [401] * 5
        locked = login(api, email, PASSWORD)
        assert locked.status_code == 429
        assert int(locked.headers["Retry-After"]) > 0
    # The correct password does not get through while locked.
    assert login(api, customer_a.email).status_code == 429


@pytest.fixture
def stuffing_api(api_settings: Settings) -> Iterator[TestClient]:
    """The app with a low per-address failure limit."""
    settings = api_settings.model_copy(
        update={"api": ApiConfig(**FAST_API_CONFIG, login_max_failures_per_ip=8)}
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_credential_stuffing_from_one_address_gets_429(
    stuffing_api: TestClient, make_user: Any
) -> None:
    victim = make_user("customer")
    statuses = [
        login(stuffing_api, f"user{i}@example.com", "Password123!").status_code for i in range(8)
    ]
    assert statuses == [401] * 8
    # Every further attempt from this address is refused, even for a real account.
    assert login(stuffing_api, victim.email).status_code == 429


def test_staff_must_pass_totp_and_pending_token_reaches_nothing(
    api: TestClient, operator: TestUser
) -> None:
    challenge = login(api, operator.email)
    assert challenge.status_code == 200
    body = challenge.json()
    assert body["status"] == "mfa_required" and "access_token" not in body
    pending = bearer(body["mfa_token"])
    assert api.get("/api/v1/me", headers=pending).status_code == 401
    assert api.get("/api/v1/audit", headers=pending).status_code == 401
    wrong = api.post(VERIFY, json={"code": "000000"}, headers=pending)
    assert wrong.status_code == 401
    ok = api.post(VERIFY, json={"code": operator.code()}, headers=pending)
    assert ok.status_code == 200
    assert api.get("/api/v1/audit", headers=bearer(ok.json()["access_token"])).status_code == 200


def test_totp_code_cannot_be_replayed(api: TestClient, operator: TestUser) -> None:
    code = operator.code()
    first = login(api, operator.email).json()["mfa_token"]
    assert api.post(VERIFY, json={"code": code}, headers=bearer(first)).status_code == 200
    second = login(api, operator.email).json()["mfa_token"]
    assert api.post(VERIFY, json={"code": code}, headers=bearer(second)).status_code == 401


def test_totp_guessing_is_throttled(api: TestClient, operator: TestUser) -> None:
    token = bearer(login(api, operator.email).json()["mfa_token"])
    statuses = [
        api.post(VERIFY, json={"code": f"{i:06d}"}, headers=token).status_code for i in range(5)
    ]
    assert statuses == [401] * 5
    refused = api.post(VERIFY, json={"code": operator.code()}, headers=token)
    assert refused.status_code == 429


def test_mfa_verify_needs_exactly_one_factor(api: TestClient, operator: TestUser) -> None:
    token = bearer(login(api, operator.email).json()["mfa_token"])
    both = {"code": "123456", "recovery_code": "abcde-fghjk"}
    assert api.post(VERIFY, json=both, headers=token).status_code == 422
    assert api.post(VERIFY, json={}, headers=token).status_code == 422


def test_staff_without_totp_must_enroll_before_anything(api: TestClient, make_user: Any) -> None:
    staff = make_user("support", totp=False)
    body = login(api, staff.email).json()
    assert body["status"] == "mfa_enrollment_required"
    pending = bearer(body["mfa_token"])
    assert api.get("/api/v1/me", headers=pending).status_code == 401
    # The enrollment token is not an MFA token either.
    assert api.post(VERIFY, json={"code": "123456"}, headers=pending).status_code == 401
    enrollment = api.post("/api/v1/auth/mfa/totp", json={}, headers=pending)
    assert enrollment.status_code == 200, enrollment.text
    secret = enrollment.json()["secret"]
    assert enrollment.json()["otpauth_uri"].startswith("otpauth://totp/")
    confirmed = api.post(
        "/api/v1/auth/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=pending
    )
    assert confirmed.status_code == 200, confirmed.text
    result = confirmed.json()
    assert len(result["recovery_codes"]) == 10
    session = bearer(result["session"]["access_token"])
    assert api.get("/api/v1/me", headers=session).json()["totp_enabled"] is True
    # From now on login asks for the code.
    assert login(api, staff.email).json()["status"] == "mfa_required"


def test_recovery_codes_are_stored_as_keyed_hashes(
    api: TestClient, make_user: Any, db: Any
) -> None:
    staff = make_user("support", totp=False)
    pending = bearer(login(api, staff.email).json()["mfa_token"])
    secret = api.post("/api/v1/auth/mfa/totp", json={}, headers=pending).json()["secret"]
    codes = api.post(
        "/api/v1/auth/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=pending
    ).json()["recovery_codes"]
    stored = {bytes(r["code_hash"]) for r in db.execute("SELECT code_hash FROM recovery_codes")}
    assert len(stored) == 10
    assert not stored & {hashlib.sha256(c.encode()).digest() for c in codes}


def test_recovery_codes_work_once(api: TestClient, make_user: Any) -> None:
    staff = make_user("support", totp=False)
    pending = bearer(login(api, staff.email).json()["mfa_token"])
    secret = api.post("/api/v1/auth/mfa/totp", json={}, headers=pending).json()["secret"]
    codes = api.post(
        "/api/v1/auth/mfa/totp/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=pending
    ).json()["recovery_codes"]
    first = bearer(login(api, staff.email).json()["mfa_token"])
    ok = api.post(VERIFY, json={"recovery_code": codes[0]}, headers=first)
    assert ok.status_code == 200
    again = bearer(login(api, staff.email).json()["mfa_token"])
    assert api.post(VERIFY, json={"recovery_code": codes[0]}, headers=again).status_code == 401
    assert api.post(VERIFY, json={"recovery_code": codes[1]}, headers=again).status_code == 200


def test_customer_may_opt_in_to_totp_with_password(api: TestClient, customer_a: TestUser) -> None:
    start = api.post("/api/v1/auth/mfa/totp", json={}, headers=customer_a.headers)
    assert start.status_code == 422  # password required from a full session
    wrong = api.post(
        "/api/v1/auth/mfa/totp", json={"password": "not it at all"}, headers=customer_a.headers
    )
    assert wrong.status_code == 403
    start = api.post(
        "/api/v1/auth/mfa/totp", json={"password": PASSWORD}, headers=customer_a.headers
    )
    assert start.status_code == 200
    secret = start.json()["secret"]
    confirm = api.post(
        "/api/v1/auth/mfa/totp/confirm",
        json={"code": pyotp.TOTP(secret).now()},
        headers=customer_a.headers,
    )
    assert confirm.status_code == 200 and confirm.json()["session"] is None
    assert login(api, customer_a.email).json()["status"] == "mfa_required"


def test_staff_cannot_turn_totp_off_but_customers_can(
    api: TestClient, operator: TestUser, make_user: Any
) -> None:
    refused = api.post(
        "/api/v1/me/mfa/disable",
        json={"password": PASSWORD, "code": operator.code()},
        headers=operator.headers,
    )
    assert refused.status_code == 403
    customer = make_user("customer", totp=True)
    no_code = api.post(
        "/api/v1/me/mfa/disable", json={"password": PASSWORD}, headers=customer.headers
    )
    assert no_code.status_code == 403
    ok = api.post(
        "/api/v1/me/mfa/disable",
        json={"password": PASSWORD, "code": customer.code()},
        headers=customer.headers,
    )
    assert ok.status_code == 204
    assert login(api, customer.email).json()["status"] == "ok"


def test_refresh_rotates_and_reuse_revokes_the_session(
    api: TestClient, customer_a: TestUser
) -> None:
    first = api.post("/api/v1/auth/refresh", json={"refresh_token": customer_a.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert api.get("/api/v1/me", headers=bearer(rotated["access_token"])).status_code == 200
    # The old refresh token was stolen and replayed: the whole session ends.
    replay = api.post("/api/v1/auth/refresh", json={"refresh_token": customer_a.refresh_token})
    assert replay.status_code == 401
    assert api.get("/api/v1/me", headers=bearer(rotated["access_token"])).status_code == 401
    again = api.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status_code == 401


def test_refresh_rejects_garbage(api: TestClient) -> None:
    for token in ("not-a-uuid.secret", "0b7f1e5e-0000-4000-8000-000000000000.x", "nodotatall"):
        response = api.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 401, token


def test_expired_forged_and_wrong_type_tokens_are_401(
    api: TestClient, customer_a: TestUser, api_settings: Settings
) -> None:
    secret = api_settings.secret_key.get_secret_value()
    session = customer_a.refresh_token.split(".")[0]
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    expired = issue_token(secret, "access", customer_a.public_id, 60, session=session, now=hour_ago)
    forged = issue_token(secret + "x", "access", customer_a.public_id, 60, session=session)
    wrong_type = issue_token(secret, "mfa", customer_a.public_id, 60, session=session)
    header, payload, _ = customer_a.access_token.split(".")
    unsigned = f"{header}.{payload}."
    for token in (expired, forged, wrong_type, unsigned, customer_a.access_token + "x"):
        response = api.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


def test_logout_revokes_and_logout_all_ends_every_session(
    api: TestClient, customer_a: TestUser
) -> None:
    second = login(api, customer_a.email).json()
    assert (
        api.post("/api/v1/auth/logout", headers=bearer(second["access_token"])).status_code == 204
    )
    assert api.get("/api/v1/me", headers=bearer(second["access_token"])).status_code == 401
    assert api.get("/api/v1/me", headers=customer_a.headers).status_code == 200
    third = login(api, customer_a.email).json()
    assert api.post("/api/v1/auth/logout-all", headers=customer_a.headers).status_code == 204
    for token in (customer_a.access_token, third["access_token"]):
        assert api.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_sessions_are_listed_and_ended_only_by_their_owner(
    api: TestClient, customer_a: TestUser, customer_b: TestUser
) -> None:
    sessions = api.get("/api/v1/me/sessions", headers=customer_a.headers).json()
    assert len(sessions) == 1 and sessions[0]["current"] is True
    other = api.delete(f"/api/v1/me/sessions/{sessions[0]['id']}", headers=customer_b.headers)
    assert other.status_code == 404
    own = api.delete(f"/api/v1/me/sessions/{sessions[0]['id']}", headers=customer_a.headers)
    assert own.status_code == 204
    assert api.get("/api/v1/me", headers=customer_a.headers).status_code == 401


def test_disabled_user_loses_access_at_once(
    api: TestClient, operator: TestUser, support: TestUser
) -> None:
    assert api.get("/api/v1/users", headers=support.headers).status_code == 200
    response = api.post(f"/api/v1/users/{support.public_id}/disable", headers=operator.headers)
    assert response.status_code == 204
    assert api.get("/api/v1/users", headers=support.headers).status_code == 401
    assert login(api, support.email).status_code == 401


def test_refresh_token_is_stored_hashed(api: TestClient, customer_a: TestUser, db: Any) -> None:
    secret = customer_a.refresh_token.split(".", 1)[1]
    rows = db.execute("SELECT refresh_hash FROM sessions").fetchall()
    assert rows and all(secret.encode() not in bytes(r["refresh_hash"]) for r in rows)


def test_parallel_guessing_cannot_outrun_the_lockout(api: TestClient, customer_a: TestUser) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(
            pool.map(lambda _: login(api, customer_a.email, "wrong guess!!").status_code, range(12))
        )
    assert statuses.count(401) == 5, statuses
    assert statuses.count(429) == 7, statuses
