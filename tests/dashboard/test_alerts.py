"""Operators acknowledge and clear alerts from the alerts page, through the rules service."""

from __future__ import annotations

import json
from typing import Any

import httpx

from store.db import connect
from tests.dashboard.conftest import DashboardServer, callback
from tests.dashboard.seed import Fleet

ACT_OUT = "..alerts-changed.data...alerts-note.children.."


def press(
    client: httpx.Client, server: DashboardServer, kind: str, alert_id: int, all_ids: list[int]
) -> httpx.Response:
    """Click one row's button, as the browser reports it (every row's buttons are inputs)."""

    def group(button: str) -> list[dict[str, Any]]:
        return [
            {
                "id": {"type": button, "id": i},
                "property": "n_clicks",
                "value": 1 if (button == kind and i == alert_id) else None,
            }
            for i in all_ids
        ]

    trigger = json.dumps({"id": alert_id, "type": kind}, separators=(",", ":"))
    body = {
        "output": ACT_OUT,
        "outputs": [
            {"id": "alerts-changed", "property": "data"},
            {"id": "alerts-note", "property": "children"},
        ],
        "inputs": [group("alert-ack"), group("alert-clear")],
        "state": [],
        "changedPropIds": [f"{trigger}.n_clicks"],
    }
    return client.post("/_dash-update-component", json=body)


def test_operator_acknowledges_then_clears_an_alert(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.signed_in(fleet.operator)
    first, second = fleet.alert_ids
    assert press(client, dashboard, "alert-ack", first, fleet.alert_ids).status_code == 200
    assert press(client, dashboard, "alert-clear", second, fleet.alert_ids).status_code == 200
    assert dashboard.settings.database_url is not None
    with connect(dashboard.settings.database_url) as conn:
        rows = {
            r["id"]: r
            for r in conn.execute("SELECT id, status, acknowledged_by FROM alerts").fetchall()
        }
        history = conn.execute(
            "SELECT alert_id, to_status, actor FROM alert_history ORDER BY id"
        ).fetchall()
    assert rows[first]["status"] == "acknowledged" and rows[first]["acknowledged_by"]
    assert rows[second]["status"] == "cleared"
    assert [(h["alert_id"], h["to_status"]) for h in history] == [
        (first, "acknowledged"),
        (second, "cleared"),
    ]
    # Acknowledging twice is refused by the rules service and reported, not a server error.
    again = press(client, dashboard, "alert-ack", first, fleet.alert_ids)
    assert again.status_code == 200 and "not active" in again.text


def test_alert_list_shows_open_alerts_most_severe_first(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.signed_in(fleet.operator)
    response = callback(
        client,
        dashboard.app,
        "alerts-list.children",
        [
            {"id": "alerts-filter", "property": "value", "value": "all"},
            {"id": "alerts-changed", "property": "data", "value": None},
            {"id": "tick", "property": "n_intervals", "value": 1},
            {"id": "viewer-tz", "property": "data", "value": "UTC"},
        ],
        [{"id": "lang", "property": "value", "value": "en"}],
    )
    text = response.text
    assert text.index("bob-car") < text.index("alice-car")  # critical before warning


def test_customer_cannot_acknowledge_alerts(dashboard: DashboardServer, fleet: Fleet) -> None:
    client = dashboard.signed_in(fleet.bob)
    assert (
        press(client, dashboard, "alert-ack", fleet.alert_ids[1], fleet.alert_ids).status_code
        == 204
    )
