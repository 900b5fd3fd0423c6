"""The rules and alerts routes through the real app: operators manage rules, staff handle alerts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from psycopg import Connection
from psycopg.rows import DictRow

from rules import service
from tests.api.conftest import TestUser
from tests.rules.conftest import T0, Feeder, add_device

SPEC: dict[str, Any] = {
    "key": "ops.warm_fridge",
    "name": "Warm fridge",
    "scope": {"model": "refrigerator"},
    "when": {"threshold": {"metric": "fridge_temp_c", "above": 8, "clear_below": 6}},
    "actions": {"alert": {"severity": "warning"}},
}


def test_operators_create_read_replace_and_retire_rules(
    api: TestClient, operator: TestUser, support: TestUser, db: Connection[DictRow]
) -> None:
    db.execute("INSERT INTO product_models (id, spec) VALUES ('refrigerator', '{}')")
    created = api.post("/api/v1/rules", json=SPEC, headers=operator.headers)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["spec"]["when"]["threshold"]["clear_below"] == 6 and rule["version"] == 1
    assert api.post("/api/v1/rules", json=SPEC, headers=support.headers).status_code == 403
    assert api.post("/api/v1/rules", json=SPEC, headers=operator.headers).status_code == 409
    listed = api.get("/api/v1/rules", headers=support.headers).json()
    assert [r["key"] for r in listed["items"]] == ["ops.warm_fridge"]
    stricter = {**SPEC, "when": {"threshold": {"metric": "fridge_temp_c", "above": 10}}}
    replaced = api.put(f"/api/v1/rules/{rule['id']}", json=stricter, headers=operator.headers)
    assert replaced.json()["version"] == 2
    assert api.delete(f"/api/v1/rules/{rule['id']}", headers=operator.headers).status_code == 204
    assert api.get(f"/api/v1/rules/{rule['id']}", headers=support.headers).status_code == 404


def test_invalid_specs_get_every_problem_with_its_path(api: TestClient, operator: TestUser) -> None:
    bad = {**SPEC, "when": {"all": [{"threshold": {"metric": "fridge_temp_c"}}, {"nope": {}}]}}
    response = api.post("/api/v1/rules", json=bad, headers=operator.headers)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = {e["path"]: e["reason"] for e in response.json()["errors"]}
    assert errors["when.all.0.threshold"] == "give exactly one of 'above' or 'below'"
    assert "exactly one key" in errors["when.all.1"]
    checked = api.post("/api/v1/rules/validate", json=bad, headers=operator.headers).json()
    assert checked["valid"] is False and len(checked["errors"]) == 2
    unknown = {**SPEC, "when": {"threshold": {"metric": "fridge_temperature", "above": 8}}}
    response = api.post("/api/v1/rules", json=unknown, headers=operator.headers)
    assert (
        response.json()["errors"] == [{"path": "scope.model", "reason": "unknown product model"}]
        or response.json()["errors"][0]["path"] == "when.threshold.metric"
    )


def test_staff_acknowledge_then_clear_an_alert_with_history(
    api: TestClient, support: TestUser, db: Connection[DictRow], database_url: str
) -> None:
    db.execute("INSERT INTO product_models (id, spec) VALUES ('refrigerator', '{}')")
    service.create_rule(db, SPEC)
    fridge = add_device(db, "refrigerator")
    Feeder(database_url).send(fridge, T0, fridge_temp_c=12.0)
    [alert] = api.get("/api/v1/alerts?status=open", headers=support.headers).json()["items"]
    assert (alert["device_uid"], alert["status"]) == (fridge.uid, "active")
    url = f"/api/v1/alerts/{alert['id']}"
    acked = api.post(f"{url}/acknowledge", json={"note": "on it"}, headers=support.headers)
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == support.public_id
    again = api.post(f"{url}/acknowledge", json={}, headers=support.headers)
    assert again.status_code == 409
    cleared = api.post(f"{url}/clear", json={"note": "door fixed"}, headers=support.headers)
    assert cleared.json()["status"] == "cleared"
    assert api.post(f"{url}/clear", json={}, headers=support.headers).status_code == 409
    history = api.get(f"{url}/history", headers=support.headers).json()
    assert [(h["from_status"], h["to_status"], h["note"]) for h in history] == [
        (None, "active", None),
        ("active", "acknowledged", "on it"),
        ("acknowledged", "cleared", "door fixed"),
    ]
    assert api.get("/api/v1/alerts?status=open", headers=support.headers).json()["items"] == []
    assert api.get("/api/v1/alerts/999999", headers=support.headers).status_code == 404
