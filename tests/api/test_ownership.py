"""OwnedDevice: staff see every device, customers only owned or shared ones, others get 404."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import TestUser, insert_device


def test_owner_and_staff_see_the_device(
    probe_api: TestClient,
    operator: TestUser,
    support: TestUser,
    customer_a: TestUser,
    device_a: str,
) -> None:
    url = f"/api/v1/probe/devices/{device_a}"
    assert probe_api.get(url, headers=customer_a.headers).json() == {
        "uid": device_a,
        "relation": "owner",
    }
    for staff in (operator, support):
        assert probe_api.get(url, headers=staff.headers).json()["relation"] is None


def test_other_customer_gets_404_same_as_for_a_missing_device(
    probe_api: TestClient, customer_b: TestUser, device_a: str
) -> None:
    theirs = probe_api.get(f"/api/v1/probe/devices/{device_a}", headers=customer_b.headers)
    missing = probe_api.get("/api/v1/probe/devices/no-such-device", headers=customer_b.headers)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"] == missing.json()["detail"]
    poke = probe_api.post(f"/api/v1/probe/devices/{device_a}/poke", headers=customer_b.headers)
    assert poke.status_code == 404


def test_shared_device_is_visible_until_the_share_ends(
    probe_api: TestClient, customer_a: TestUser, customer_b: TestUser, db: Any
) -> None:
    uid = insert_device(db, customer_a.customer_id)
    device_id = db.execute("SELECT id FROM devices WHERE uid = %s", (uid,)).fetchone()["id"]
    db.execute(
        "INSERT INTO device_ownerships (device_id, customer_id, role) VALUES (%s, %s, 'family')",
        (device_id, customer_b.customer_id),
    )
    url = f"/api/v1/probe/devices/{uid}"
    assert probe_api.get(url, headers=customer_b.headers).json()["relation"] == "family"
    db.execute(
        "UPDATE device_ownerships SET ended_at = now() WHERE customer_id = %s",
        (customer_b.customer_id,),
    )
    assert probe_api.get(url, headers=customer_b.headers).status_code == 404


def test_previous_owner_loses_access_after_transfer(
    probe_api: TestClient, customer_a: TestUser, customer_b: TestUser, device_a: str, db: Any
) -> None:
    db.execute(
        "UPDATE device_ownerships SET ended_at = now() WHERE customer_id = %s",
        (customer_a.customer_id,),
    )
    device_id = db.execute("SELECT id FROM devices WHERE uid = %s", (device_a,)).fetchone()["id"]
    db.execute(
        "INSERT INTO device_ownerships (device_id, customer_id, role) VALUES (%s, %s, 'owner')",
        (device_id, customer_b.customer_id),
    )
    url = f"/api/v1/probe/devices/{device_a}"
    assert probe_api.get(url, headers=customer_a.headers).status_code == 404
    assert probe_api.get(url, headers=customer_b.headers).status_code == 200


def test_device_ids_cannot_be_enumerated(
    probe_api: TestClient, customer_b: TestUser, device_a: str
) -> None:
    # Malformed and absent uids answer like existing foreign ones: nothing to tell them apart.
    statuses = {
        probe_api.get(f"/api/v1/probe/devices/{uid}", headers=customer_b.headers).status_code
        for uid in (device_a, "dev-00000000", "dev-ffffffff")
    }
    assert statuses == {404}
