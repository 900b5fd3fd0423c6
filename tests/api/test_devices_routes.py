"""Device, member, twin, command and customer routes: who may do what, through the real app."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from app.broker_url import MqttEndpoint
from app.settings import Settings
from devices.catalog_sync import sync_product_models
from tests.api.conftest import TestUser
from tests.devices.mqtt_helpers import TestClient as MqttClient

API = "/api/v1"


@pytest.fixture
def catalog(db: Any) -> None:
    sync_product_models(db)


def _customer(api: TestClient, operator: TestUser, name: str) -> dict[str, Any]:
    email = f"{name.lower()}-{secrets.token_hex(3)}@example.com"
    body = {"name": name, "email": email, "phone": "+81 90 1111 2233", "language": "ja"}
    response = api.post(f"{API}/customers", headers=operator.headers, json=body)
    assert response.status_code == 201, response.text
    return {**response.json(), "email": email}


def _user_for(make_user: Any, db: Any, customer: dict[str, Any]) -> TestUser:
    row = db.execute(
        "SELECT id FROM customers WHERE public_id = %s", (customer["public_id"],)
    ).fetchone()
    return make_user("customer", customer_id=row["id"])


def _device(api: TestClient, operator: TestUser, model: str, owner: dict[str, Any]) -> str:
    created = api.post(
        f"{API}/devices",
        headers=operator.headers,
        json={"serial": f"SN-{secrets.token_hex(4)}", "model_id": model, "nickname": "Blue"},
    )
    assert created.status_code == 201, created.text
    uid: str = created.json()["uid"]
    assigned = api.put(
        f"{API}/devices/{uid}/owner",
        headers=operator.headers,
        json={"customer_public_id": owner["public_id"]},
    )
    assert assigned.status_code == 200, assigned.text
    return uid


@pytest.fixture
def family(api: TestClient, operator: TestUser, make_user: Any, db: Any, catalog: None) -> Any:
    """An owner, a partner and a stranger, each a customer with a login; one EV owned."""
    people = {n: _customer(api, operator, n) for n in ("Owner", "Partner", "Stranger")}
    users = {n: _user_for(make_user, db, c) for n, c in people.items()}
    uid = _device(api, operator, "ev", people["Owner"])
    return people, users, uid


def test_customers_see_only_their_devices(api: TestClient, family: Any) -> None:
    _, users, uid = family
    mine = api.get(f"{API}/devices", headers=users["Owner"].headers).json()["items"]
    assert [(d["uid"], d["role"]) for d in mine] == [(uid, "owner")]
    assert api.get(f"{API}/devices", headers=users["Stranger"].headers).json()["items"] == []
    stranger = users["Stranger"].headers
    for method, path in [
        ("GET", f"/devices/{uid}"),
        ("GET", f"/devices/{uid}/twin"),
        ("GET", f"/devices/{uid}/commands"),
        ("GET", f"/devices/{uid}/connections"),
        ("PATCH", f"/devices/{uid}"),
    ]:
        response = api.request(method, API + path, headers=stranger, json={"nickname": "x"})
        assert response.status_code == 404, (method, path, response.status_code)
    assert api.get(f"{API}/devices/unknown-uid", headers=users["Owner"].headers).status_code == 404


def test_sharing_and_transfer_change_access_at_once(
    api: TestClient, family: Any, operator: TestUser
) -> None:
    people, users, uid = family
    owner, partner, stranger = users["Owner"], users["Partner"], users["Stranger"]
    shared = api.post(
        f"{API}/devices/{uid}/members",
        headers=owner.headers,
        json={"email": people["Partner"]["email"].upper()},
    )
    assert shared.status_code == 201, shared.text
    seen = api.get(f"{API}/devices/{uid}", headers=partner.headers)
    assert seen.status_code == 200 and seen.json()["role"] == "family"
    # Family may not share further, see the member list, or rename.
    attempt = api.post(
        f"{API}/devices/{uid}/members",
        headers=partner.headers,
        json={"email": people["Stranger"]["email"]},
    )
    assert attempt.status_code == 403
    assert api.get(f"{API}/devices/{uid}/members", headers=partner.headers).status_code == 403
    renamed = api.patch(f"{API}/devices/{uid}", headers=partner.headers, json={"nickname": "x"})
    assert renamed.status_code == 403
    # Sharing with an email nobody registered says so; mass assignment is refused.
    unknown = api.post(
        f"{API}/devices/{uid}/members", headers=owner.headers, json={"email": "no@one.example"}
    )
    assert unknown.status_code == 404
    sneaky = api.post(
        f"{API}/devices/{uid}/members",
        headers=owner.headers,
        json={"email": people["Stranger"]["email"], "role": "owner"},
    )
    assert sneaky.status_code == 422
    moved = api.post(
        f"{API}/devices/{uid}/transfer",
        headers=owner.headers,
        json={"email": people["Stranger"]["email"]},
    )
    assert moved.status_code == 200, moved.text
    assert api.get(f"{API}/devices/{uid}", headers=owner.headers).status_code == 404
    assert api.get(f"{API}/devices/{uid}", headers=partner.headers).status_code == 404
    assert api.get(f"{API}/devices/{uid}", headers=stranger.headers).json()["role"] == "owner"
    history = api.get(f"{API}/devices/{uid}/members?history=true", headers=operator.headers)
    assert [m["ended_at"] is None for m in history.json()] == [False, False, True]


def test_family_member_may_leave(api: TestClient, family: Any) -> None:
    people, users, uid = family
    api.post(
        f"{API}/devices/{uid}/members",
        headers=users["Owner"].headers,
        json={"email": people["Partner"]["email"]},
    )
    left = api.delete(
        f"{API}/devices/{uid}/members/{people['Partner']['public_id']}",
        headers=users["Partner"].headers,
    )
    assert left.status_code == 204
    assert api.get(f"{API}/devices/{uid}", headers=users["Partner"].headers).status_code == 404


@pytest.fixture
def listener(mqtt_url: str, topic_prefix: str) -> Iterator[MqttClient]:
    endpoint = MqttEndpoint.from_url(mqtt_url)
    client = MqttClient(endpoint.host, endpoint.port, None, None, f"l-{secrets.token_hex(4)}")
    assert client.subscribe(f"{topic_prefix}/#")
    yield client
    client.close()


@pytest.mark.mqtt5
def test_desired_state_and_commands_through_the_api(
    api: TestClient, family: Any, support: TestUser, listener: MqttClient
) -> None:
    _, users, uid = family
    owner = users["Owner"].headers
    desired = api.patch(
        f"{API}/devices/{uid}/twin/desired",
        headers=owner,
        json={"values": {"charge_limit_pct": 85}},
    )
    assert desired.status_code == 200, desired.text
    assert desired.json()["delta"] == {"charge_limit_pct": 85}
    out_of_range = api.patch(
        f"{API}/devices/{uid}/twin/desired", headers=owner, json={"values": {"charge_limit_pct": 5}}
    )
    assert out_of_range.status_code == 422
    read_only = api.patch(
        f"{API}/devices/{uid}/twin/desired",
        headers=support.headers,
        json={"values": {"charge_limit_pct": 60}},
    )
    assert read_only.status_code == 403
    sent = api.post(
        f"{API}/devices/{uid}/commands",
        headers=owner,
        json={"name": "set_charge_limit", "args": {"limit_pct": 90}},
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "pending"
    command_id = sent.json()["command_id"]
    topics = [topic.rsplit("/", 2)[-2:] for topic, _, _ in listener.wait_for(2)]
    assert topics == [[uid, "desired"], ["commands", command_id]]
    unknown = api.post(f"{API}/devices/{uid}/commands", headers=owner, json={"name": "fly"})
    assert unknown.status_code == 422
    as_support = api.post(
        f"{API}/devices/{uid}/commands", headers=support.headers, json={"name": "lock"}
    )
    assert as_support.status_code == 403
    listed = api.get(f"{API}/devices/{uid}/commands", headers=support.headers)
    assert [c["command_id"] for c in listed.json()] == [command_id]
    one = api.get(f"{API}/devices/{uid}/commands/{command_id}", headers=owner)
    assert one.status_code == 200 and one.json()["name"] == "set_charge_limit"


def test_customer_personal_data_views(
    api: TestClient, family: Any, operator: TestUser, support: TestUser
) -> None:
    people, users, _ = family
    owner = people["Owner"]
    as_support = api.get(f"{API}/customers/{owner['public_id']}", headers=support.headers).json()
    assert as_support["email"].startswith(owner["email"][0] + "•••")
    assert as_support["name"] == "O•••"
    as_operator = api.get(f"{API}/customers/{owner['public_id']}", headers=operator.headers)
    assert as_operator.json()["email"] == owner["email"]
    me = api.get(f"{API}/customers/me", headers=users["Owner"].headers).json()
    assert me["phone"] == "+81 90 1111 2233"
    changed = api.patch(
        f"{API}/customers/me", headers=users["Owner"].headers, json={"time_zone": "Europe/Berlin"}
    )
    assert changed.status_code == 200 and changed.json()["time_zone"] == "Europe/Berlin"
    for sneaky_change in ({"email": "x@evil.example"}, {"phone": "+81 80 0000 0000"}):
        owner_headers = users["Owner"].headers
        sneaky = api.patch(f"{API}/customers/me", headers=owner_headers, json=sneaky_change)
        assert sneaky.status_code == 422, sneaky_change  # needs re-authentication: /me/...
    me = api.get(f"{API}/customers/me", headers=users["Owner"].headers).json()
    assert me["phone"] == "+81 90 1111 2233"
    duplicate = api.post(
        f"{API}/customers", headers=operator.headers, json={"name": "X", "email": owner["email"]}
    )
    assert duplicate.status_code == 409
    listed = api.get(f"{API}/customers?limit=2", headers=support.headers).json()
    assert len(listed["items"]) == 2 and listed["next_cursor"]
    assert all("•••" in c["email"] for c in listed["items"])
    devices = api.get(f"{API}/customers/{owner['public_id']}/devices", headers=support.headers)
    assert [d["role"] for d in devices.json()] == ["owner"]


def test_csv_import_through_the_api(api: TestClient, operator: TestUser, catalog: None) -> None:
    good = "serial,model_id\nCSV-1,ev\nCSV-2,refrigerator\n"
    headers = {**operator.headers, "Content-Type": "text/csv"}
    imported = api.post(f"{API}/devices/import", headers=headers, content=good)
    assert imported.status_code == 200 and imported.json()["imported"] == 2
    bad = "serial,model_id\nCSV-3,ev\nCSV-1,ev\nCSV-4,spaceship\n"
    refused = api.post(f"{API}/devices/import", headers=headers, content=bad)
    assert refused.status_code == 422
    assert [(p["line"], p["reason"]) for p in refused.json()["problems"]] == [
        (3, "serial already registered"),
        (4, "unknown model_id 'spaceship'"),
    ]
    assert api.get(f"{API}/devices?limit=10", headers=operator.headers).json()["items"][0][
        "serial"
    ] in ("CSV-1", "CSV-2")


def test_bad_input_is_refused_cleanly(api: TestClient, family: Any, operator: TestUser) -> None:
    _, users, uid = family
    owner = users["Owner"].headers
    for body in ({"nickname": "a\x00b"}, {"nickname": "x" * 81}, {"nickname": 5}):
        assert api.patch(f"{API}/devices/{uid}", headers=owner, json=body).status_code == 422
    nul_arg = {"name": "set_charge_limit", "args": {"limit_pct": "\x00"}}
    assert api.post(f"{API}/devices/{uid}/commands", headers=owner, json=nul_arg).status_code == 422
    too_long = {"name": "lock", "ttl_s": 10**9}
    assert (
        api.post(f"{API}/devices/{uid}/commands", headers=owner, json=too_long).status_code == 422
    )
    assert api.get(f"{API}/devices?limit=100000", headers=operator.headers).status_code == 422
    assert api.get(f"{API}/devices/{uid}/connections?limit=0", headers=owner).status_code == 422
    bad_uid = api.get(f"{API}/devices/{'x' * 65}", headers=operator.headers)
    assert bad_uid.status_code in (404, 422)
    escaped = api.patch(f"{API}/devices/{uid}", headers=owner, json={"nickname": "<b>Hi</b>"})
    assert escaped.json()["nickname"] == "<b>Hi</b>"  # stored as text; the UI escapes it


def test_command_to_a_device_whose_stored_model_is_a_stub(
    api: TestClient, customer_a: TestUser, device_a: str
) -> None:
    # device_a's product_models row is '{}': the shipped 'ev' model describes it instead.
    sent = api.post(
        f"{API}/devices/{device_a}/commands", headers=customer_a.headers, json={"name": "lock"}
    )
    assert sent.status_code == 202, sent.text
    odd = api.post(
        f"{API}/devices/{device_a}/commands",
        headers=customer_a.headers,
        json={"name": "lock", "args": {"x": 1}},
    )
    assert odd.status_code == 422


def _downlink_threads() -> set[threading.Thread]:
    """paho's network threads of API downlinks (named after their client ids)."""
    return {
        t
        for t in threading.enumerate()
        if t.name.startswith("paho-mqtt-client-kizuna-downlink-") and t.is_alive()
    }


def test_downlink_connection_ends_with_the_app(
    api_settings: Settings, customer_a: TestUser, device_a: str
) -> None:
    before = _downlink_threads()
    app = create_app(api_settings)
    with TestClient(app, base_url="http://testserver") as client:
        sent = client.post(
            f"{API}/devices/{device_a}/commands", headers=customer_a.headers, json={"name": "lock"}
        )
        assert sent.status_code == 202, sent.text
        opened = _downlink_threads() - before
        assert len(opened) == 1, "sending a command opens one downlink"
        assert app.state.devices_downlink is not None
    (thread,) = opened
    thread.join(timeout=10)
    assert not thread.is_alive(), "the downlink's network thread outlived the app"
    assert app.state.devices_downlink is None
