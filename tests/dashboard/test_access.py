"""Sign-in with password and TOTP, and authorization inside every callback."""

from __future__ import annotations

import json
from typing import Any

from api.seed import seed_user
from app.settings import Settings
from devices import service as devices_service
from devices.models import CustomerCreate
from store.db import connect
from tests.dashboard.conftest import DashboardServer, callback
from tests.dashboard.seed import PASSWORD, Fleet

FLEET_OUT = "..fleet-body.children...fleet-updated.children.."
FLEET_IN: list[dict[str, Any]] = [
    {"id": "tick", "property": "n_intervals", "value": 1},
    {"id": "viewer-tz", "property": "data", "value": "Asia/Tokyo"},
]
LANG: list[dict[str, Any]] = [{"id": "lang", "property": "value", "value": "en"}]
PRODUCTS_OUT = "..portal-products.children...portal-product.options.."
DETAIL_OUT = "portal-product-detail.children"


def _route(client: Any, server: DashboardServer, path: str) -> dict[str, Any]:
    response = callback(
        client,
        server.app,
        "..page.children...nav.children...account.children..",
        [{"id": "url", "property": "pathname", "value": path}, LANG[0]],
        [{"id": "url", "property": "search", "value": ""}],
    )
    assert response.status_code == 200
    return response.json()["response"]


def test_login_needs_password_and_current_one_time_code(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.client()
    for password, otp in (
        (PASSWORD, "000000"),
        ("wrong password", fleet.operator.code()),
        (PASSWORD, ""),
    ):
        response = client.post(
            "/auth/login", data={"email": fleet.operator.email, "password": password, "otp": otp}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/login?error=1"
        assert "kizuna_dashboard" not in response.cookies
    assert dashboard.login(fleet.operator).cookies.get("kizuna_dashboard")


def test_customer_without_two_factor_signs_in_with_password_only(
    dashboard: DashboardServer, fleet: Fleet, dash_settings: Settings
) -> None:
    email = "no-totp-customer@example.com"
    assert dash_settings.database_url is not None
    with connect(dash_settings.database_url) as conn:
        cipher = devices_service.cipher_from_settings(dash_settings)
        customer = devices_service.create_customer(
            conn, cipher, CustomerCreate(name="Chika", email=email)
        )
        conn.commit()
    seed_user(
        dash_settings, role="customer", email=email, password=PASSWORD, customer_id=customer.id
    )
    login_page = json.dumps(_route(dashboard.client(), dashboard, "/login")["page"])
    assert '"id": "login-otp"' in login_page and '"required": false' in login_page
    response = dashboard.client().post(
        "/auth/login", data={"email": email, "password": PASSWORD, "otp": ""}
    )
    assert response.headers["location"] == "/"
    assert response.cookies.get("kizuna_dashboard")


def test_one_time_code_cannot_be_replayed(dashboard: DashboardServer, fleet: Fleet) -> None:
    code = fleet.alice.code()
    first = dashboard.client().post(
        "/auth/login", data={"email": fleet.alice.email, "password": PASSWORD, "otp": code}
    )
    second = dashboard.client().post(
        "/auth/login", data={"email": fleet.alice.email, "password": PASSWORD, "otp": code}
    )
    assert first.headers["location"] == "/"
    assert second.headers["location"] == "/login?error=1"


def test_login_redirect_stays_on_this_site(dashboard: DashboardServer, fleet: Fleet) -> None:
    response = dashboard.client().post(
        "/auth/login",
        data={
            "email": fleet.bob.email,
            "password": PASSWORD,
            "otp": fleet.bob.code(),
            "next": "//evil.example/steal",
        },
    )
    assert response.headers["location"] == "/"


def test_anonymous_sees_login_and_callbacks_return_nothing(dashboard: DashboardServer) -> None:
    client = dashboard.client()
    page = _route(client, dashboard, "/devices")
    assert "login-submit" in json.dumps(page["page"])
    assert callback(client, dashboard.app, FLEET_OUT, FLEET_IN, LANG).status_code == 204


def test_customer_cannot_use_operator_callbacks_or_pages(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.signed_in(fleet.alice)
    assert callback(client, dashboard.app, FLEET_OUT, FLEET_IN, LANG).status_code == 204
    page = json.dumps(_route(client, dashboard, "/devices")["page"])
    assert "You do not have access" in page
    assert "bob-car" not in page


def test_operator_cannot_use_portal_callbacks(dashboard: DashboardServer, fleet: Fleet) -> None:
    client = dashboard.signed_in(fleet.operator)
    response = callback(client, dashboard.app, PRODUCTS_OUT, FLEET_IN, LANG)
    assert response.status_code == 204


def test_customer_sees_only_their_products_and_feed(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.signed_in(fleet.alice)
    products = callback(client, dashboard.app, PRODUCTS_OUT, FLEET_IN, LANG).text
    assert "alice-car" in products and "alice-fridge" in products
    assert "bob-car" not in products
    feed = callback(
        client,
        dashboard.app,
        "..portal-feed.children...portal-prefs.children..",
        [FLEET_IN[0], {"id": "prefs-saved", "property": "data", "value": None}, FLEET_IN[1]],
        LANG,
    ).text
    assert "80%" in feed
    assert "Battery is low" not in feed


def test_customer_cannot_open_another_customers_product_by_id(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.signed_in(fleet.alice)
    state = [{"id": "viewer-tz", "property": "data", "value": "UTC"}, LANG[0]]
    own = callback(
        client,
        dashboard.app,
        DETAIL_OUT,
        [{"id": "portal-product", "property": "value", "value": "alice-car"}],
        state,
    )
    assert "State of charge (%)" in own.text
    for forged in ("bob-car", "fleet-001", "' OR 1=1 --", "x" * 500):
        response = callback(
            client,
            dashboard.app,
            DETAIL_OUT,
            [{"id": "portal-product", "property": "value", "value": forged}],
            state,
        )
        assert response.status_code == 200
        assert "Not found" in response.text
        assert "22.0" not in response.text and "State of charge" not in response.text


def test_sign_out_revokes_the_session(dashboard: DashboardServer, fleet: Fleet) -> None:
    client = dashboard.signed_in(fleet.operator)
    stolen_cookie = client.cookies.get("kizuna_dashboard")
    assert callback(client, dashboard.app, FLEET_OUT, FLEET_IN, LANG).status_code == 200
    client.post("/auth/logout")
    replay = dashboard.client()
    replay.cookies.set("kizuna_dashboard", stolen_cookie or "")
    assert callback(replay, dashboard.app, FLEET_OUT, FLEET_IN, LANG).status_code == 204


def test_forged_session_cookie_is_ignored(dashboard: DashboardServer) -> None:
    client = dashboard.client()
    client.cookies.set("kizuna_dashboard", '{"kizuna_session": "{\\"sid\\": \\"x\\"}"}')
    assert callback(client, dashboard.app, FLEET_OUT, FLEET_IN, LANG).status_code == 204


def _save_prefs(
    client: Any, server: DashboardServer, scope: str | None, channels: Any, delivery: Any
) -> Any:
    return callback(
        client,
        server.app,
        "..prefs-saved.data...prefs-note.children..",
        [{"id": "prefs-save", "property": "n_clicks", "value": 1}],
        [
            {"id": "prefs-scope", "property": "value", "value": scope},
            {"id": "prefs-channels", "property": "value", "value": channels},
            {"id": "prefs-delivery", "property": "value", "value": delivery},
            LANG[0],
        ],
    )


def test_customer_saves_preferences_only_for_their_own_products(
    dashboard: DashboardServer, fleet: Fleet
) -> None:
    client = dashboard.signed_in(fleet.alice)
    saved = _save_prefs(client, dashboard, "alice-car", ["feed", "email"], "digest")
    assert "Saved." in saved.text
    forged = _save_prefs(client, dashboard, "bob-car", ["email"], "off")
    assert "Not saved (not found)" in forged.text
    junk = _save_prefs(client, dashboard, None, ["fax", "feed"], "always")
    assert "Not saved (invalid)" in junk.text
    prefs = callback(
        client,
        dashboard.app,
        "..portal-feed.children...portal-prefs.children..",
        [FLEET_IN[0], {"id": "prefs-saved", "property": "data", "value": 1}, FLEET_IN[1]],
        LANG,
    ).json()
    prefs = json.dumps(prefs, ensure_ascii=False)
    assert "alice-car / *" in prefs and "feed, email" in prefs and "digest" in prefs
    assert "bob-car" not in prefs
