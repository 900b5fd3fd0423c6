"""Operator pages through real HTTP callbacks against the seeded fleet."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from dashboard.pages.devices import query_from_inputs
from dashboard.pages.fleet_map import bounds_from_relayout
from tests.dashboard.conftest import DashboardServer, callback
from tests.dashboard.seed import Fleet

TZ = {"id": "viewer-tz", "property": "data", "value": "Asia/Tokyo"}
TICK = {"id": "tick", "property": "n_intervals", "value": 1}


def lang(value: str = "en") -> list[dict[str, Any]]:
    return [{"id": "lang", "property": "value", "value": value}]


@pytest.fixture(scope="module")
def operator(dashboard: DashboardServer, fleet: Fleet) -> httpx.Client:
    return dashboard.signed_in(fleet.operator)


def devices_page(
    client: httpx.Client,
    server: DashboardServer,
    *,
    page: int = 0,
    sort: list[dict[str, str]] | None = None,
    search: str | None = None,
    model: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    response = callback(
        client,
        server.app,
        "..devices-table.data...devices-table.page_count...devices-table.page_current...devices-total.children..",
        [
            {"id": "devices-table", "property": "page_current", "value": page},
            {"id": "devices-table", "property": "sort_by", "value": sort or []},
            {"id": "devices-search", "property": "value", "value": search},
            {"id": "devices-model", "property": "value", "value": model},
            {"id": "devices-status", "property": "value", "value": status},
            TZ,
        ],
        lang(),
    )
    assert response.status_code == 200, response.text
    return response.json()["response"]


def test_fleet_overview_counts_devices_alerts_and_ingest_health(
    dashboard: DashboardServer, operator: httpx.Client
) -> None:
    response = callback(
        operator,
        dashboard.app,
        "..fleet-body.children...fleet-updated.children..",
        [TICK, TZ],
        lang(),
    )
    body = json.dumps(response.json()["response"]["fleet-body"])
    kpis = {
        k: body.split(f'"id": "{k}"')[0].rsplit('"children": "', 1)[1].split('"')[0]
        for k in ("kpi-devices", "kpi-online", "kpi-alerts", "kpi-gaps")
    }
    # 3 owned + 20 fleet devices; every third fleet device was last seen 3 hours ago.
    assert kpis == {"kpi-devices": "23", "kpi-online": "16", "kpi-alerts": "2", "kpi-gaps": "1"}
    assert '"schema"' in body and '"clock_skew"' in body  # dead letters by reason


def test_devices_table_pages_filters_and_sorts_on_the_server(
    dashboard: DashboardServer, operator: httpx.Client
) -> None:
    first = devices_page(operator, dashboard)
    assert first["devices-table"]["page_count"] == 1
    assert "23" in first["devices-total"]["children"]
    uids = [r["uid"] for r in first["devices-table"]["data"]]
    assert uids == sorted(uids)
    desc = devices_page(operator, dashboard, sort=[{"column_id": "serial", "direction": "desc"}])
    serials = [r["serial"] for r in desc["devices-table"]["data"]]
    assert serials == sorted(serials, reverse=True)
    evs = devices_page(operator, dashboard, model="ev", status="offline")
    assert {r["model_id"] for r in evs["devices-table"]["data"]} == {"ev"}
    assert all(r["status"] == "Offline" for r in evs["devices-table"]["data"])
    beyond = devices_page(operator, dashboard, page=10**6)  # past the end: the last page
    assert beyond["devices-table"]["page_current"] == 0
    assert len(beyond["devices-table"]["data"]) == 23
    found = devices_page(operator, dashboard, search="ALICE")
    assert [r["serial"] for r in found["devices-table"]["data"]] == [
        "SN-alice-car",
        "SN-alice-fridge",
    ]
    # LIKE wildcards in the search box are literal characters.
    assert devices_page(operator, dashboard, search="%")["devices-table"]["data"] == []


def test_devices_table_refuses_unknown_sort_columns_and_huge_pages() -> None:
    query = query_from_inputs(
        10**9,
        [{"column_id": "password_hash; DROP TABLE devices", "direction": "desc"}],
        "x" * 1000,
        None,
        "weird",
        300,
    )
    assert query.sort_by == "uid" and not query.descending
    assert query.page == 1_000_000 and query.status is None and len(query.search or "") == 64


def test_device_detail_shows_twin_alerts_messages(
    dashboard: DashboardServer, operator: httpx.Client
) -> None:
    response = callback(
        operator,
        dashboard.app,
        "..device-head.children...device-panels.children..",
        [{"id": "device-uid", "property": "data", "value": "alice-car"}, TICK, TZ],
        lang("ja"),
    )
    text = json.dumps(response.json(), ensure_ascii=False)
    assert "充電残量（%）" in text and "81.50" in text  # reported, named for people
    assert "充電上限（%）" in text  # desired
    assert "soc_pct" not in text and "charge_limit_pct" not in text
    assert "ev.low_battery" in text  # alert
    assert "\\u5145\\u96fb" in text or "充電" in text  # the message in Japanese
    assert "\\u30aa\\u30f3\\u30e9\\u30a4\\u30f3" in text or "オンライン" in text


def test_seven_day_chart_is_downsampled_by_the_database_quickly(
    dashboard: DashboardServer, operator: httpx.Client
) -> None:
    inputs = [
        {"id": "device-metric", "property": "value", "value": "soc_pct"},
        {"id": "device-range", "property": "value", "value": "7d"},
    ]
    state = [{"id": "device-uid", "property": "data", "value": "alice-car"}, TZ, *lang("en")]
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        response = callback(operator, dashboard.app, "device-chart.figure", inputs, state)
        timings.append(time.perf_counter() - started)
    figure = response.json()["response"]["device-chart"]["figure"]
    mean = figure["data"][2]
    assert 250 <= len(mean["y"]) <= 301  # 2016 stored readings, ~300 buckets
    assert min(mean["y"]) >= 20 and max(mean["y"]) <= 90
    assert min(timings) < 0.3, timings  # whole HTTP round trip, loaded CI machine


def test_chart_refuses_metrics_the_model_does_not_have(
    dashboard: DashboardServer, operator: httpx.Client
) -> None:
    inputs = [
        {"id": "device-metric", "property": "value", "value": "vals[1]); DROP"},
        {"id": "device-range", "property": "value", "value": "9999d"},
    ]
    state = [{"id": "device-uid", "property": "data", "value": "alice-car"}, TZ, *lang("en")]
    response = callback(operator, dashboard.app, "device-chart.figure", inputs, state)
    assert response.status_code == 200
    assert response.json()["response"]["device-chart"]["figure"]["data"] == []


def test_map_clusters_when_dense_and_shows_devices_when_zoomed(
    dashboard: DashboardServer, operator: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def draw(relayout: dict[str, Any] | None) -> dict[str, Any]:
        response = callback(
            operator,
            dashboard.app,
            "..fleet-map.figure...map-note.children..",
            [{"id": "fleet-map", "property": "relayoutData", "value": relayout}, TICK],
            lang(),
        )
        return response.json()["response"]

    monkeypatch.setattr(dashboard.settings.dashboard, "map_max_points", 3)
    dense = draw(None)
    assert "clusters" in dense["map-note"]["children"]
    # located: two owned cars, five fleet EVs and fifteen appliances with an address
    assert sum(int(t.split(" ")[0]) for t in dense["fleet-map"]["figure"]["data"][0]["text"]) == 22
    zoomed = draw(
        {
            "xaxis.range[0]": 139.699,
            "xaxis.range[1]": 139.701,
            "yaxis.range[0]": 35.659,
            "yaxis.range[1]": 35.661,
        }
    )
    assert zoomed["fleet-map"]["figure"]["data"][0]["text"] == ["alice-car"]
    assert bounds_from_relayout({"xaxis.range[0]": "nan?"}).lat_min == -90


def test_customer_page_shows_health_products_and_timeline(
    dashboard: DashboardServer, operator: httpx.Client, fleet: Fleet
) -> None:
    response = callback(
        operator,
        dashboard.app,
        "customer-detail.children",
        [
            {"id": "customer-public-id", "property": "data", "value": fleet.alice_public_id},
            TICK,
            TZ,
        ],
        lang(),
    )
    text = response.text
    assert "Alice Aoki" in text  # decrypted for operators
    assert "Needs attention" in text  # a warning alert on her car
    assert "alice-fridge" in text and "bob-car" not in text
    listing = callback(
        operator,
        dashboard.app,
        "..customers-list.children...customers-total.children..",
        [{"id": "customers-page", "property": "value", "value": 1}, TICK],
        lang(),
    )
    assert "Alice Aoki" in listing.text and "Bob Brown" in listing.text


def test_rules_page_lists_rules_and_recent_firings(
    dashboard: DashboardServer, operator: httpx.Client
) -> None:
    response = callback(operator, dashboard.app, "rules-body.children", [TICK, TZ], lang())
    assert "ev.low_battery" in response.text and "ev.battery_low" in response.text


def test_every_page_renders_for_an_operator(
    dashboard: DashboardServer, operator: httpx.Client, fleet: Fleet
) -> None:
    for path in (
        "/",
        "/map",
        "/devices",
        "/devices/alice-car",
        "/alerts",
        "/customers",
        f"/customers/{fleet.alice_public_id}",
        "/rules",
    ):
        response = callback(
            operator,
            dashboard.app,
            "..page.children...nav.children...account.children..",
            [{"id": "url", "property": "pathname", "value": path}, lang("ja")[0]],
            [{"id": "url", "property": "search", "value": ""}],
        )
        assert response.status_code == 200, path
        assert "Not found" not in response.text and "access" not in response.text, path
