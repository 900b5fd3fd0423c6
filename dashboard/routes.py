"""Which page answers which path, for which role, and the navigation bar."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from dash import Dash, dcc, html

from dashboard.auth import Principal, Role
from dashboard.context import DashboardContext
from dashboard.i18n import t
from dashboard.pages import (
    alerts,
    customers,
    device,
    devices,
    fleet,
    fleet_map,
    login,
    portal,
    rules,
)
from dashboard.ui import empty

Layout = Callable[[str, dict[str, str]], Any]


@dataclass(frozen=True)
class Route:
    """A path pattern, the role allowed to see it and the layout that draws it."""

    pattern: re.Pattern[str]
    role: Role
    layout: Layout


ROUTES: tuple[Route, ...] = (
    Route(re.compile(r"^/$"), "operator", fleet.layout),
    Route(re.compile(r"^/map$"), "operator", fleet_map.layout),
    Route(re.compile(r"^/devices$"), "operator", devices.layout),
    Route(
        re.compile(r"^/devices/(?P<uid>[A-Za-z0-9][A-Za-z0-9_-]{0,63})$"), "operator", device.layout
    ),
    Route(re.compile(r"^/alerts$"), "operator", alerts.layout),
    Route(re.compile(r"^/customers$"), "operator", customers.layout),
    Route(
        re.compile(r"^/customers/(?P<public_id>[0-9a-f-]{36})$"),
        "operator",
        customers.detail_layout,
    ),
    Route(re.compile(r"^/rules$"), "operator", rules.layout),
    Route(re.compile(r"^/portal$"), "customer", portal.layout),
)

OPERATOR_NAV = (
    ("/", "nav.fleet"),
    ("/map", "nav.map"),
    ("/devices", "nav.devices"),
    ("/alerts", "nav.alerts"),
    ("/customers", "nav.customers"),
    ("/rules", "nav.rules"),
)
CUSTOMER_NAV = (("/portal", "nav.portal"),)


def register_pages(app: Dash, ctx: DashboardContext) -> None:
    """Register every page's data callbacks."""
    for module in (fleet, fleet_map, devices, device, alerts, customers, rules, portal):
        module.register(app, ctx)


def render(principal: Principal | None, pathname: str, search: str, lang: str) -> Any:
    """The page for `pathname`: sign-in when anonymous, refusal when the role does not fit."""
    if principal is None:
        error = "error" in parse_qs(search.lstrip("?"))
        return login.layout(lang, next_path=pathname if pathname != "/login" else "/", error=error)
    if pathname in ("/login", "/") and principal.role == "customer":
        return dcc.Location(id="redirect", href="/portal")
    if pathname == "/login":
        return dcc.Location(id="redirect", href="/")
    for route in ROUTES:
        match = route.pattern.match(pathname)
        if match is None:
            continue
        if route.role != principal.role:
            return html.Div(empty(lang, "common.forbidden"), className="page-body")
        return route.layout(lang, match.groupdict())
    return html.Div(empty(lang, "common.not_found"), className="page-body")


def nav(principal: Principal | None, pathname: str, lang: str) -> list[Any]:
    """Links for the signed-in role, the current one highlighted."""
    if principal is None:
        return []
    items = OPERATOR_NAV if principal.role == "operator" else CUSTOMER_NAV
    return [
        dcc.Link(
            t(key, lang),
            href=href,
            className="nav-link active" if _is_current(href, pathname) else "nav-link",
        )
        for href, key in items
    ]


def _is_current(href: str, pathname: str) -> bool:
    return pathname == href or (href != "/" and pathname.startswith(href + "/"))
