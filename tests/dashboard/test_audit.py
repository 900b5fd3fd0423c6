"""What people change in the dashboard lands in the audit log, named as the API names it."""

from __future__ import annotations

import contextlib
from typing import Any

from api.audit import client_reference
from store.db import connect
from tests.dashboard.conftest import DashboardServer, callback
from tests.dashboard.seed import Fleet, SeedUser
from tests.dashboard.test_alerts import press


def _audit_rows(server: DashboardServer, action: str) -> list[dict[str, Any]]:
    assert server.settings.database_url is not None
    with contextlib.closing(connect(server.settings.database_url, autocommit=True)) as conn:
        return list(
            conn.execute(
                "SELECT * FROM audit_log WHERE action = %s ORDER BY id", (action,)
            ).fetchall()
        )


def _public_id(server: DashboardServer, user: SeedUser) -> tuple[str, str]:
    assert server.settings.database_url is not None
    with contextlib.closing(connect(server.settings.database_url, autocommit=True)) as conn:
        row = conn.execute(
            "SELECT u.public_id AS user_id, c.public_id AS customer_id FROM users u "
            "LEFT JOIN customers c ON c.id = u.customer_id WHERE u.id = %s",
            (user.user_id,),
        ).fetchone()
    assert row is not None
    return str(row["user_id"]), str(row["customer_id"])


def _local_client(server: DashboardServer) -> str:
    """The pseudonym of the test's own address (the dashboard is reached over loopback)."""
    return client_reference(server.settings.secret_key.get_secret_value(), "127.0.0.1")


def test_alert_handling_in_the_dashboard_is_audited(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.signed_in(fleet.operator)
    operator_id, _ = _public_id(dashboard, fleet.operator)
    first, second = fleet.alert_ids
    assert press(client, dashboard, "alert-ack", first, fleet.alert_ids).status_code == 200
    assert press(client, dashboard, "alert-clear", second, fleet.alert_ids).status_code == 200
    refused = press(client, dashboard, "alert-ack", first, fleet.alert_ids)
    assert refused.status_code == 200 and "not active" in refused.text
    acknowledged = _audit_rows(dashboard, "alert.acknowledged")
    cleared = _audit_rows(dashboard, "alert.cleared")
    expected = {
        "actor_kind": "user",
        "actor_id": operator_id,
        "actor_role": "operator",
        "target_kind": "alert",
        "client_ref": _local_client(dashboard),
    }
    for row, alert_id, outcome in (
        (acknowledged[0], first, "success"),
        (cleared[0], second, "success"),
        (acknowledged[1], first, "failure"),
    ):
        assert {k: row[k] for k in expected} == expected
        assert (row["target_id"], row["outcome"]) == (str(alert_id), outcome)
        assert row["details"]["via"] == "dashboard"
    assert acknowledged[0]["details"] == {
        "device": "alice-car",
        "rule": "ev.low_battery",
        "via": "dashboard",
    }
    assert len(acknowledged) == 2 and len(cleared) == 1


def test_preferences_saved_in_the_portal_are_audited(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.signed_in(fleet.alice)
    alice_id, alice_customer = _public_id(dashboard, fleet.alice)
    saved = callback(
        client,
        dashboard.app,
        "..prefs-saved.data...prefs-note.children..",
        [{"id": "prefs-save", "property": "n_clicks", "value": 1}],
        [
            {"id": "prefs-scope", "property": "value", "value": "alice-car"},
            {"id": "prefs-channels", "property": "value", "value": ["feed", "email"]},
            {"id": "prefs-delivery", "property": "value", "value": "digest"},
            {"id": "lang", "property": "value", "value": "en"},
        ],
    )
    assert "Saved." in saved.text
    [row] = _audit_rows(dashboard, "preference.updated")
    assert (row["actor_id"], row["actor_role"], row["outcome"]) == (alice_id, "customer", "success")
    assert (row["target_kind"], row["target_id"]) == ("customer", alice_customer)
    assert row["details"] == {
        "device": "alice-car",
        "channels": ["feed", "email"],
        "delivery": "digest",
        "via": "dashboard",
    }
    assert fleet.alice.email not in str(row)
