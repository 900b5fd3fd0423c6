"""The audit log: one specific event per domain action, refusals included, no personal data.

Every test drives the real app (real PostgreSQL, real SMTP, the real MQTT broker for device
commands) and reads the rows the action left in `audit_log`.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import psycopg
import pyotp
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.audit import AuditAction, client_reference
from api.routers.auth import PUBLIC_ROUTES
from app.settings import Settings
from devices.catalog_sync import sync_product_models
from tests.api.conftest import PASSWORD, SmtpSink, TestUser
from tests.api.routes import RouteInfo, all_routes
from tests.api.test_login import login
from tests.api.test_recovery import reset_token
from tests.conftest import make_test_settings

API = "/api/v1"
RULE_SPEC: dict[str, Any] = {
    "key": "ops.warm_fridge",
    "name": "Warm fridge",
    "scope": {"model": "refrigerator"},
    "when": {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}},
    "actions": {"alert": {"severity": "warning"}},
}
# Routes whose service writes every outcome itself (no caller is known before they succeed),
# and the one POST that changes nothing.
SELF_RECORDING = PUBLIC_ROUTES | {"/api/v1/auth/mfa/totp", "/api/v1/auth/mfa/totp/confirm"}
NOT_A_CHANGE = {"/api/v1/rules/validate"}
PERSONAL_DATA_PREFIXES = ("/api/v1/customers", "/api/v1/users", "/api/v1/me")


def _declarations() -> list[RouteInfo]:
    """Every route of the app (creating the app touches no database)."""
    settings = make_test_settings(
        "postgresql://x@127.0.0.1/x", "mqtt://127.0.0.1:1", "kz", Path("/tmp")
    )
    return all_routes(create_app(settings))


ROUTES = _declarations()


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    """Webhook URLs on private hosts are accepted, so no test resolves a real host name."""
    notify = api_settings.notify.model_copy(update={"allow_private_webhooks": True})
    return api_settings.model_copy(update={"notify": notify})


@pytest.fixture(autouse=True)
def catalog(db: Any) -> None:
    """The shipped product models."""
    sync_product_models(db)


def events(db: Any, action: str) -> list[dict[str, Any]]:
    """Rows of one action, oldest first."""
    return list(
        db.execute("SELECT * FROM audit_log WHERE action = %s ORDER BY id", (action,)).fetchall()
    )


def the_event(
    db: Any, action: str, outcome: str = "success", *, target_id: str | None = None
) -> dict[str, Any]:
    """The one row of `action` with `outcome` (on `target_id`, when given)."""
    rows = [
        r
        for r in events(db, action)
        if r["outcome"] == outcome and target_id in (None, r["target_id"])
    ]
    assert len(rows) == 1, f"{action}/{outcome}: {rows}"
    return rows[0]


def assert_event(
    row: dict[str, Any],
    *,
    actor: TestUser,
    target: tuple[str, str | None],
    details: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    """Who did it, to what, from where (pseudonymous), with which details."""
    assert (row["actor_kind"], row["actor_id"], row["actor_role"]) == (
        "user",
        actor.public_id,
        actor.role,
    )
    assert (row["target_kind"], row["target_id"]) == target
    if client is not None:
        assert row["client_ref"] == client
    for key, value in (details or {}).items():
        assert row["details"].get(key) == value, (key, row["details"])


def local_client_ref(settings: Settings) -> str:
    """The pseudonym of the TestClient's peer ("testclient")."""
    return client_reference(settings.secret_key.get_secret_value(), "testclient")


def new_customer(api: TestClient, operator: TestUser, name: str) -> dict[str, Any]:
    """A customer registered through the API (its email, public id and internal id)."""
    email = f"{name.lower()}-{secrets.token_hex(3)}@example.com"
    body = {"name": name, "email": email, "phone": "+81 90 1234 5678", "address": "1-2-3 Shibuya"}
    response = api.post(f"{API}/customers", headers=operator.headers, json=body)
    assert response.status_code == 201, response.text
    return {**response.json(), **body}


def customer_user(make_user: Any, db: Any, customer: dict[str, Any]) -> TestUser:
    """A login for a customer registered through the API."""
    row = db.execute(
        "SELECT id FROM customers WHERE public_id = %s", (customer["public_id"],)
    ).fetchone()
    return make_user("customer", customer_id=row["id"], email=customer["email"])


@pytest.fixture
def household(api: TestClient, operator: TestUser, make_user: Any, db: Any) -> dict[str, Any]:
    """An owner and a partner (customers with logins) and an EV registered by the operator."""
    owner, partner = (new_customer(api, operator, n) for n in ("Haruto", "Yui"))
    created = api.post(
        f"{API}/devices",
        headers=operator.headers,
        json={"serial": f"SN-{secrets.token_hex(4)}", "model_id": "ev", "nickname": "Haruto's"},
    )
    assert created.status_code == 201, created.text
    return {
        "owner": owner,
        "partner": partner,
        "owner_user": customer_user(make_user, db, owner),
        "partner_user": customer_user(make_user, db, partner),
        "uid": created.json()["uid"],
    }


# --- devices ------------------------------------------------------------------------------


def test_device_registry_and_people_changes_are_recorded(
    api: TestClient, api_settings: Settings, operator: TestUser, household: dict[str, Any], db: Any
) -> None:
    uid, owner, partner = household["uid"], household["owner"], household["partner"]
    owner_user = household["owner_user"]
    assert_event(
        the_event(db, "customer.created", target_id=owner["public_id"]),
        actor=operator,
        target=("customer", owner["public_id"]),
    )
    assert_event(
        the_event(db, "device.registered"),
        actor=operator,
        target=("device", uid),
        details={"model_id": "ev"},
        client=local_client_ref(api_settings),
    )
    assigned = api.put(
        f"{API}/devices/{uid}/owner",
        headers=operator.headers,
        json={"customer_public_id": owner["public_id"]},
    )
    assert assigned.status_code == 200, assigned.text
    assert_event(
        the_event(db, "device.owner_assigned"),
        actor=operator,
        target=("device", uid),
        details={"owner": owner["public_id"]},
    )
    owner_headers = owner_user.headers
    renamed = api.patch(f"{API}/devices/{uid}", headers=owner_headers, json={"nickname": "Blue"})
    assert renamed.status_code == 200, renamed.text
    assert_event(the_event(db, "device.renamed"), actor=owner_user, target=("device", uid))
    shared = api.post(
        f"{API}/devices/{uid}/members", headers=owner_headers, json={"email": partner["email"]}
    )
    assert shared.status_code == 201, shared.text
    assert_event(
        the_event(db, "device.shared"),
        actor=owner_user,
        target=("device", uid),
        details={"member": partner["public_id"]},
    )
    unshared = api.delete(
        f"{API}/devices/{uid}/members/{partner['public_id']}", headers=owner_headers
    )
    assert unshared.status_code == 204, unshared.text
    assert_event(
        the_event(db, "device.unshared"),
        actor=owner_user,
        target=("device", uid),
        details={"member": partner["public_id"]},
    )
    moved = api.post(
        f"{API}/devices/{uid}/transfer", headers=owner_headers, json={"email": partner["email"]}
    )
    assert moved.status_code == 200, moved.text
    assert_event(
        the_event(db, "device.transferred"),
        actor=owner_user,
        target=("device", uid),
        details={"new_owner": partner["public_id"], "keep_family": False},
    )
    csv_headers = {**operator.headers, "Content-Type": "text/csv"}
    imported = api.post(
        f"{API}/devices/import", headers=csv_headers, content="serial,model_id\nCSV-9,ev\n"
    )
    assert imported.status_code == 200, imported.text
    row = the_event(db, "device.imported")
    assert_event(row, actor=operator, target=("device", None), details={"imported": 1})


def test_credential_changes_are_recorded(
    api: TestClient, operator: TestUser, household: dict[str, Any], db: Any
) -> None:
    uid = household["uid"]
    base = f"{API}/devices/{uid}/credentials"
    assert api.post(base, headers=operator.headers).status_code == 201
    assert api.post(f"{base}/rotate", headers=operator.headers).status_code == 200
    assert api.delete(base, headers=operator.headers).status_code == 204
    for action in ("device.provisioned", "device.credential_rotated", "device.revoked"):
        row = the_event(db, action)
        assert_event(row, actor=operator, target=("device", uid))
        # The credential itself never reaches the log.
        assert "password" not in json.dumps(row["details"])


def test_commands_and_desired_state_are_recorded(
    api: TestClient, operator: TestUser, household: dict[str, Any], db: Any
) -> None:
    uid, owner = household["uid"], household["owner"]
    api.put(
        f"{API}/devices/{uid}/owner",
        headers=operator.headers,
        json={"customer_public_id": owner["public_id"]},
    )
    owner_user = household["owner_user"]
    sent = api.post(
        f"{API}/devices/{uid}/commands",
        headers=owner_user.headers,
        json={"name": "set_charge_limit", "args": {"limit_pct": 90}},
    )
    assert sent.status_code == 202, sent.text
    assert_event(
        the_event(db, "device.command_sent"),
        actor=owner_user,
        target=("device", uid),
        details={"command": "set_charge_limit", "command_id": sent.json()["command_id"]},
    )
    desired = api.patch(
        f"{API}/devices/{uid}/twin/desired",
        headers=owner_user.headers,
        json={"values": {"charge_limit_pct": 85}},
    )
    assert desired.status_code == 200, desired.text
    assert_event(
        the_event(db, "device.desired_changed"),
        actor=owner_user,
        target=("device", uid),
        details={"metrics": ["charge_limit_pct"]},
    )


# --- people and their accounts -----------------------------------------------------------


def test_account_administration_is_recorded(api: TestClient, operator: TestUser, db: Any) -> None:
    created = api.post(
        f"{API}/users",
        headers=operator.headers,
        json={"role": "support", "email": "desk@example.com", "password": PASSWORD},
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    assert_event(
        the_event(db, "user.created"),
        actor=operator,
        target=("user", user_id),
        details={"role": "support"},
    )
    assert api.post(f"{API}/users/{user_id}/disable", headers=operator.headers).status_code == 204
    assert_event(the_event(db, "user.disabled"), actor=operator, target=("user", user_id))
    key = api.post(
        f"{API}/api-keys", json={"name": "crm", "scopes": ["read"]}, headers=operator.headers
    )
    key_id = key.json()["id"]
    assert_event(
        the_event(db, "api_key.created"),
        actor=operator,
        target=("api_key", key_id),
        details={"scopes": ["read"]},
    )
    assert api.delete(f"{API}/api-keys/{key_id}", headers=operator.headers).status_code == 204
    assert_event(the_event(db, "api_key.revoked"), actor=operator, target=("api_key", key_id))


def test_two_factor_changes_are_recorded(api: TestClient, customer_a: TestUser, db: Any) -> None:
    me = ("user", customer_a.public_id)
    enrolled = api.post(
        f"{API}/auth/mfa/totp", json={"password": PASSWORD}, headers=customer_a.headers
    )
    assert enrolled.status_code == 200, enrolled.text
    assert_event(the_event(db, "user.mfa_enrollment_started"), actor=customer_a, target=me)
    totp = pyotp.TOTP(enrolled.json()["secret"])
    # Each time step is single use and later steps only: the previous, current and next
    # steps give three codes, all accepted (one step of drift either way).
    if totp.interval - time.time() % totp.interval < 5:
        time.sleep(5)  # not at the edge of a step, so the three stay valid throughout
    now = time.time()
    previous, current, following = (totp.at(now + d * totp.interval) for d in (-1, 0, 1))
    confirmed = api.post(
        f"{API}/auth/mfa/totp/confirm", json={"code": previous}, headers=customer_a.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    assert_event(
        the_event(db, "user.mfa_enrolled"), actor=customer_a, target=me, details={"method": "totp"}
    )
    regenerated = api.post(
        f"{API}/me/mfa/recovery-codes",
        json={"password": PASSWORD, "code": current},
        headers=customer_a.headers,
    )
    assert regenerated.status_code == 200, regenerated.text
    assert_event(the_event(db, "user.recovery_codes_regenerated"), actor=customer_a, target=me)
    disabled = api.post(
        f"{API}/me/mfa/disable",
        json={"password": PASSWORD, "code": following},
        headers=customer_a.headers,
    )
    assert disabled.status_code == 204, disabled.text
    assert_event(the_event(db, "user.mfa_disabled"), actor=customer_a, target=me)


def test_contact_and_password_changes_are_recorded(
    api: TestClient, customer_a: TestUser, db: Any
) -> None:
    me = ("user", customer_a.public_id)
    new_email = f"new-{secrets.token_hex(3)}@example.com"
    changes = {
        "user.phone_changed": ("/me/phone", {"new_phone": "+81 80 9999 0000"}),
        "user.email_changed": ("/me/email", {"new_email": new_email}),
        "user.password_changed": ("/me/password", {"new_password": "another long passphrase"}),
    }
    for action, (path, body) in changes.items():
        response = api.post(
            f"{API}{path}", json={"password": PASSWORD, **body}, headers=customer_a.headers
        )
        assert response.status_code == 204, response.text
        assert_event(the_event(db, action), actor=customer_a, target=me)


def test_password_reset_is_recorded(
    api: TestClient, api_settings: Settings, customer_a: TestUser, mail: SmtpSink, db: Any
) -> None:
    me = ("user", customer_a.public_id)
    assert (
        api.post(f"{API}/auth/password-reset", json={"email": customer_a.email}).status_code == 202
    )
    assert (
        api.post(f"{API}/auth/password-reset", json={"email": "no@example.com"}).status_code == 202
    )
    assert_event(the_event(db, "user.password_reset_requested"), actor=customer_a, target=me)
    unknown = the_event(db, "user.password_reset_requested", outcome="failure")
    assert (unknown["actor_kind"], unknown["target_id"]) == ("anonymous", None)
    confirmed = api.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": reset_token(mail, customer_a.email), "new_password": "fresh passphrase 9"},
    )
    assert confirmed.status_code == 204, confirmed.text
    assert_event(
        the_event(db, "user.password_reset"),
        actor=customer_a,
        target=me,
        details={"sessions_ended": True},
        client=local_client_ref(api_settings),
    )


def test_sign_in_and_sessions_are_recorded(api: TestClient, make_user: Any, db: Any) -> None:
    person = make_user("customer")
    me = ("user", person.public_id)
    assert login(api, person.email, "wrong password!").status_code == 401
    assert_event(
        the_event(db, "user.logged_in", outcome="failure"),
        actor=person,
        target=me,
        details={"step": "password"},
    )
    tokens = login(api, person.email).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    # make_user's own session was issued by the service; the password login is the second.
    signed_in = [r for r in events(db, "user.logged_in") if r["outcome"] == "success"]
    assert signed_in[-1]["details"] == {"method": "password", "session": tokens["session_id"]}
    assert (
        api.delete(f"{API}/me/sessions/{tokens['session_id']}", headers=person.headers).status_code
        == 204
    )
    assert_event(
        the_event(db, "session.ended"), actor=person, target=("session", tokens["session_id"])
    )
    assert api.post(f"{API}/auth/logout", headers=person.headers).status_code == 204
    assert_event(the_event(db, "user.logged_out"), actor=person, target=me)
    assert api.get(f"{API}/me", headers=headers).status_code == 401


def test_erasure_is_recorded_for_operators_and_for_the_customer(
    api: TestClient, operator: TestUser, make_user: Any, db: Any
) -> None:
    erased = new_customer(api, operator, "Sora")
    response = api.post(
        f"{API}/privacy/customers/{erased['public_id']}/erase", headers=operator.headers
    )
    assert response.status_code == 200, response.text
    assert_event(
        the_event(db, "customer.erased"),
        actor=operator,
        target=("customer", erased["public_id"]),
        details={"devices_detached": 0, "accounts_closed": 0},
    )
    leaving = new_customer(api, operator, "Ren")
    person = customer_user(make_user, db, leaving)
    forgot = api.post(
        f"{API}/privacy/forget-me", json={"password": PASSWORD}, headers=person.headers
    )
    assert forgot.status_code == 200, forgot.text
    mine = [r for r in events(db, "customer.erased") if r["actor_id"] == person.public_id]
    assert len(mine) == 1
    assert_event(mine[0], actor=person, target=("customer", leaving["public_id"]))


# --- rules, alerts, notifications ----------------------------------------------------------


def _alert(db: Any, rule_id: int, uid: str) -> int:
    row = db.execute(
        "INSERT INTO alerts (rule_id, device_id, severity, opened_at, dedup_key) "
        "SELECT %s, id, 'warning', now(), %s FROM devices WHERE uid = %s RETURNING id",
        (rule_id, f"test-{uid}", uid),
    ).fetchone()
    return int(row["id"])


def test_rule_changes_and_alert_handling_are_recorded(
    api: TestClient, operator: TestUser, support: TestUser, household: dict[str, Any], db: Any
) -> None:
    created = api.post(f"{API}/rules", json=RULE_SPEC, headers=operator.headers)
    assert created.status_code == 201, created.text
    rule_id = str(created.json()["id"])
    rule = ("rule", rule_id)
    assert_event(
        the_event(db, "rule.created"),
        actor=operator,
        target=rule,
        details={"key": RULE_SPEC["key"]},
    )
    stricter = {**RULE_SPEC, "when": {"threshold": {"metric": "fridge_temp_c", "above": 10}}}
    assert (
        api.put(f"{API}/rules/{rule_id}", json=stricter, headers=operator.headers).status_code
        == 200
    )
    assert_event(the_event(db, "rule.updated"), actor=operator, target=rule)
    alert_id = _alert(db, int(rule_id), household["uid"])
    url = f"{API}/alerts/{alert_id}"
    assert (
        api.post(
            f"{url}/acknowledge", json={"note": "call Haruto"}, headers=support.headers
        ).status_code
        == 200
    )
    acked = the_event(db, "alert.acknowledged")
    assert_event(
        acked,
        actor=support,
        target=("alert", str(alert_id)),
        details={"device": household["uid"], "rule": RULE_SPEC["key"]},
    )
    assert "Haruto" not in json.dumps(acked["details"])  # free-text notes stay out
    assert api.post(f"{url}/clear", json={}, headers=support.headers).status_code == 200
    assert_event(the_event(db, "alert.cleared"), actor=support, target=("alert", str(alert_id)))
    assert api.delete(f"{API}/rules/{rule_id}", headers=operator.headers).status_code == 204
    assert_event(the_event(db, "rule.deleted"), actor=operator, target=rule)


def test_webhooks_and_preferences_are_recorded(
    api: TestClient, operator: TestUser, household: dict[str, Any], db: Any
) -> None:
    person, customer = household["owner_user"], household["owner"]["public_id"]
    target = ("customer", customer)
    profile = {"daily_cap": 5, "webhook_url": "https://hooks.example.internal/t/s3cr3t"}
    for url, action in (
        ("https://hooks.example.internal/t/s3cr3t", "webhook.created"),
        ("https://hooks.example.internal/t/other", "webhook.updated"),
        (None, "webhook.deleted"),
    ):
        saved = api.put(
            f"{API}/preferences/profile",
            json={**profile, "webhook_url": url},
            headers=person.headers,
        )
        assert saved.status_code == 200, saved.text
        assert_event(the_event(db, action), actor=person, target=target)
    updates = events(db, "notification_profile.updated")
    assert len(updates) == 3 and updates[0]["details"]["fields"] == ["daily_cap", "webhook_url"]
    assert "s3cr3t" not in json.dumps([r["details"] for r in updates])
    scope = {"channels": ["feed", "email"], "delivery": "digest"}
    assert (
        api.put(f"{API}/preferences/scopes", json=scope, headers=person.headers).status_code == 204
    )
    assert_event(
        the_event(db, "preference.updated"),
        actor=person,
        target=target,
        details={"channels": ["feed", "email"], "delivery": "digest", "device": None},
    )
    assert api.delete(f"{API}/preferences/scopes", headers=person.headers).status_code == 204
    assert_event(the_event(db, "preference.cleared"), actor=person, target=target)


def test_feed_actions_are_recorded(api: TestClient, customer_a: TestUser, db: Any) -> None:
    post_id = db.execute(
        "INSERT INTO feed_posts (customer_id, kind, severity, language, title, body) "
        "VALUES (%s, 'ev.charge_complete', 'info', 'en', 'Charged', 'All set') RETURNING id",
        (customer_a.customer_id,),
    ).fetchone()["id"]
    post = ("feed_post", str(post_id))
    url = f"{API}/feed/{post_id}"
    assert api.post(f"{url}/read", headers=customer_a.headers).status_code == 204
    assert api.delete(f"{url}/read", headers=customer_a.headers).status_code == 204
    reacted = api.post(f"{url}/reactions", json={"reaction": "thanks"}, headers=customer_a.headers)
    assert reacted.status_code == 204, reacted.text
    assert_event(the_event(db, "feed_post.read"), actor=customer_a, target=post)
    assert_event(the_event(db, "feed_post.unread"), actor=customer_a, target=post)
    assert_event(
        the_event(db, "feed_post.reacted"),
        actor=customer_a,
        target=post,
        details={"reaction": "thanks"},
    )


# --- refusals, reads, personal data ---------------------------------------------------------


def test_refused_and_failed_actions_are_recorded_under_their_own_action(
    api: TestClient,
    operator: TestUser,
    support: TestUser,
    customer_a: TestUser,
    customer_b: TestUser,
    device_a: str,
    db: Any,
) -> None:
    rotate = f"{API}/devices/{device_a}/credentials/rotate"
    assert api.post(rotate, headers=support.headers).status_code == 403
    row = the_event(db, "device.credential_rotated", outcome="denied")
    assert_event(row, actor=support, target=("device", device_a), details={"status": 403})
    # Someone else's device answers 404, and the log says who tried which device.
    command = f"{API}/devices/{device_a}/commands"
    assert api.post(command, json={"name": "lock"}, headers=customer_b.headers).status_code == 404
    row = the_event(db, "device.command_sent", outcome="denied")
    assert_event(row, actor=customer_b, target=("device", device_a), details={"status": 404})
    assert events(db, "device.command_sent") == [row]
    # An invalid change fails, and leaves no success behind.
    assert api.post(f"{API}/rules", json={"key": "x"}, headers=operator.headers).status_code == 422
    row = the_event(db, "rule.created", outcome="failure")
    assert_event(row, actor=operator, target=("rule", None), details={"status": 422})
    assert api.post(f"{API}/rules", json=RULE_SPEC, headers=operator.headers).status_code == 201
    assert api.post(f"{API}/rules", json=RULE_SPEC, headers=operator.headers).status_code == 409
    assert [r["outcome"] for r in events(db, "rule.created")] == ["failure", "success", "failure"]
    # An API key without the write scope.
    key = api.post(
        f"{API}/api-keys", json={"name": "ro", "scopes": ["read"]}, headers=operator.headers
    )
    key_headers = {"Authorization": f"Bearer {key.json()['key']}"}
    assert api.post(f"{API}/alerts/1/acknowledge", json={}, headers=key_headers).status_code == 403
    row = the_event(db, "alert.acknowledged", outcome="denied")
    assert (row["actor_kind"], row["actor_id"], row["actor_role"]) == (
        "api_key",
        key.json()["id"],
        "integration",
    )
    assert (row["target_kind"], row["target_id"]) == ("alert", "1")


def test_reads_of_personal_data_are_recorded(
    api: TestClient, operator: TestUser, support: TestUser, db: Any
) -> None:
    customer = new_customer(api, operator, "Mei")
    assert (
        api.get(f"{API}/customers/{customer['public_id']}", headers=support.headers).status_code
        == 200
    )
    assert_event(
        the_event(db, "customer.viewed"), actor=support, target=("customer", customer["public_id"])
    )
    assert api.get(f"{API}/users/{operator.public_id}", headers=support.headers).status_code == 200
    assert_event(the_event(db, "user.viewed"), actor=support, target=("user", operator.public_id))
    assert api.get(f"{API}/customers", headers=support.headers).status_code == 200
    assert_event(the_event(db, "customer.listed"), actor=support, target=("customer", None))


def test_no_personal_data_reaches_the_audit_log(
    api_settings: Settings, operator: TestUser, make_user: Any, db: Any
) -> None:
    """Emails, names, phones, postal addresses, nicknames, webhook URLs, client addresses."""
    client_ip = "198.51.100.23"
    with TestClient(create_app(api_settings), client=(client_ip, 50123)) as api:
        customer = new_customer(api, operator, "Kazuki")
        person = customer_user(make_user, db, customer)
        created = api.post(
            f"{API}/devices",
            headers=operator.headers,
            json={"serial": "SN-PII-1", "model_id": "ev", "nickname": "Kazuki's car"},
        )
        uid = created.json()["uid"]
        api.put(
            f"{API}/devices/{uid}/owner",
            headers=operator.headers,
            json={"customer_public_id": customer["public_id"]},
        )
        api.patch(
            f"{API}/devices/{uid}", headers=person.headers, json={"nickname": "Kazuki no kuruma"}
        )
        api.patch(f"{API}/customers/me", headers=person.headers, json={"name": "Kazuki Mori"})
        login(api, customer["email"], "wrong password!")
        api.post(f"{API}/auth/password-reset", json={"email": "stranger@example.com"})
        api.put(
            f"{API}/preferences/profile",
            json={"webhook_url": "https://kazuki-home.example.internal/hook"},
            headers=person.headers,
        )
        api.post(
            f"{API}/me/phone",
            json={"password": PASSWORD, "new_phone": "+81 70 1111 2222"},
            headers=person.headers,
        )
        assert (
            api.get(
                f"{API}/customers/{customer['public_id']}", headers=operator.headers
            ).status_code
            == 200
        )
        found = api.get(
            f"{API}/audit",
            params={"client_ip": client_ip, "limit": "200"},
            headers=operator.headers,
        )
    rows = db.execute("SELECT * FROM audit_log").fetchall()
    dump = json.dumps(rows, default=str)
    for personal in (
        customer["email"],
        "stranger@example.com",
        "Kazuki",
        "1-2-3 Shibuya",
        "+81 90 1234 5678",
        "+81 70 1111 2222",
        "kazuki-home",
        client_ip,
    ):
        assert personal not in dump, personal
    reference = client_reference(api_settings.secret_key.get_secret_value(), client_ip)
    from_there = [r for r in rows if r["client_ref"] == reference]
    assert {"customer.created", "device.renamed", "user.logged_in", "user.phone_changed"} <= {
        r["action"] for r in from_there
    }
    # Operators still find everything one address did, by giving the address.
    assert found.status_code == 200, found.text
    assert {e["id"] for e in found.json()["items"]} == {r["id"] for r in from_there}


# --- the log itself ----------------------------------------------------------------------


def test_audit_log_refuses_update_delete_and_truncate(
    api: TestClient, operator: TestUser, db: Any
) -> None:
    api.post(f"{API}/api-keys", json={"name": "n", "scopes": ["read"]}, headers=operator.headers)
    before = db.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
    assert any(r["action"] == "api_key.created" for r in before)
    for statement in (
        "UPDATE audit_log SET action = 'x.y'",
        "UPDATE audit_log SET details = '{}' WHERE action = 'api_key.created'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(statement)
    assert db.execute("SELECT * FROM audit_log ORDER BY id").fetchall() == before


def test_the_api_only_reads_the_audit_log() -> None:
    methods = {r.method for r in ROUTES if r.path.startswith(f"{API}/audit")}
    assert methods == {"GET"}


@pytest.mark.parametrize(
    "route",
    [
        r
        for r in ROUTES
        if r.path.startswith(API)
        and r.path not in SELF_RECORDING | NOT_A_CHANGE
        and (r.method != "GET" or r.path.startswith(PERSONAL_DATA_PREFIXES))
    ],
    ids=lambda r: f"{r.method} {r.path}",
)
def test_every_change_and_personal_data_read_declares_its_audit_action(route: RouteInfo) -> None:
    assert route.audit is not None, f"{route.method} {route.path} has no @audited(...)"
    assert route.audit.action in set(AuditAction)
    assert route.audit.read == (route.method == "GET")


def test_record_sync_is_usable_by_other_packages(db: Any) -> None:
    from api.audit import record_sync

    record_sync(db, "rule.updated", target_kind="rule", target_id="42", details={"field": "x"})
    row = db.execute(
        "SELECT actor_kind, action, target_id FROM audit_log WHERE action = 'rule.updated'"
    ).fetchone()
    assert row == {"actor_kind": "system", "action": "rule.updated", "target_id": "42"}


def test_only_operators_query_the_audit_log(
    api: TestClient, support: TestUser, customer_a: TestUser
) -> None:
    for user in (support, customer_a):
        assert api.get(f"{API}/audit", headers=user.headers).status_code == 403


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
        page = api.get(f"{API}/audit", params=params, headers=operator.headers).json()
        seen += [e["target_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [str(i) for i in range(7)]
