"""Customers: who they are, their products, what their products told them, and their health."""

from __future__ import annotations

import math
from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboard.auth import require
from dashboard.context import DashboardContext
from dashboard.health import HealthInputs, customer_health
from dashboard.i18n import format_time, t
from dashboard.ui import badge, card, empty, loading, table
from devices import reporting as devices_reporting
from notify import reporting as notify_reporting
from rules import reporting as rules_reporting

PAGE_SIZE = 25
HEALTH_BADGE = {"good": "online", "attention": "warning", "at_risk": "critical"}


def layout(lang: str, _params: dict[str, str]) -> html.Div:
    """A paged customer list."""
    return html.Div(
        [
            html.Div(
                [
                    html.H2(t("customers.title", lang)),
                    html.Span(id="customers-total", className="muted"),
                ],
                className="page-head",
            ),
            loading(html.Div(id="customers-list")),
            dcc.Input(id="customers-page", type="number", min=1, value=1, className="input pager"),
        ],
        className="page-body",
    )


def detail_layout(lang: str, params: dict[str, str]) -> html.Div:
    """One customer: products, health, messages and preferences."""
    return html.Div(
        [
            dcc.Store(id="customer-public-id", data=params["public_id"]),
            loading(html.Div(id="customer-detail")),
        ],
        className="page-body",
    )


def register(app: Dash, ctx: DashboardContext) -> None:
    """List and detail callbacks."""

    @app.callback(
        Output("customers-list", "children"),
        Output("customers-total", "children"),
        Input("customers-page", "value"),
        Input("tick", "n_intervals"),
        State("lang", "value"),
    )
    def listing(page: int | None, _n: int | None, lang: str | None) -> tuple[Any, str]:
        require("operator")
        page_index = max(0, min(int(page or 1), 1_000_000) - 1)
        with ctx.connection() as conn:
            rows, total = devices_reporting.customers_page(
                conn, page=page_index, page_size=PAGE_SIZE, online_window_s=ctx.online_window_s
            )
        pages = max(1, math.ceil(total / PAGE_SIZE))
        body = (
            table(
                [
                    t("customers.title", lang),
                    t("customers.language", lang),
                    "TZ",
                    t("customers.devices", lang),
                    t("common.online", lang),
                ],
                [
                    [
                        dcc.Link(
                            ctx.customer_name(c.name_enc) or c.public_id[:8],
                            href=f"/customers/{c.public_id}",
                        ),
                        c.language,
                        c.time_zone,
                        c.devices,
                        c.online,
                    ]
                    for c in rows
                ],
                table_id="customers-table",
            )
            if rows
            else empty(lang)
        )
        return body, f"{total:,} · {page_index + 1}/{pages}"

    @app.callback(
        Output("customer-detail", "children"),
        Input("customer-public-id", "data"),
        Input("tick", "n_intervals"),
        Input("viewer-tz", "data"),
        State("lang", "value"),
    )
    def detail(public_id: str, _n: int | None, tz: str | None, lang: str | None) -> Any:
        require("operator")
        with ctx.connection() as conn:
            customer = devices_reporting.customer_by_public_id(conn, str(public_id)[:36])
            if customer is None:
                return empty(lang, "common.not_found")
            products = devices_reporting.customer_devices(
                conn, customer.id, online_window_s=ctx.online_window_s
            )
            alerts = rules_reporting.open_alert_counts_for_customer(conn, customer.id)
            failed = notify_reporting.failed_deliveries(conn, customer.id)
            messages = notify_reporting.customer_messages(conn, customer.id, limit=30)
            prefs = notify_reporting.customer_preferences(conn, customer.id)
        health = customer_health(
            HealthInputs(
                devices=len(products),
                online=sum(p.online for p in products),
                critical_alerts=alerts["critical"],
                warning_alerts=alerts["warning"],
                failed_deliveries=failed,
            )
        )
        name = ctx.customer_name(customer.name_enc) or customer.public_id
        return [
            html.Div(
                [html.H2(name), badge(t(f"health.{health}", lang), HEALTH_BADGE[health])],
                className="page-head",
                id="customer-health",
            ),
            html.Div(
                [
                    card(t("customers.devices", lang), product_table(products, tz, lang)),
                    card(t("customers.preferences", lang), preferences_view(prefs, lang)),
                    card(t("customers.timeline", lang), timeline(messages, tz, lang), wide=True),
                ],
                className="grid",
            ),
        ]


def product_table(
    products: list[devices_reporting.DeviceDetail], tz: str | None, lang: str | None
) -> Any:
    """A customer's products with connection state."""
    if not products:
        return empty(lang)
    return table(
        [
            t("col.uid", lang),
            t("col.model_id", lang),
            t("col.status", lang),
            t("col.last_seen", lang),
        ],
        [
            [
                dcc.Link(p.uid, href=f"/devices/{p.uid}"),
                p.model_id,
                badge(
                    t("common.online" if p.online else "common.offline", lang),
                    "online" if p.online else "offline",
                ),
                format_time(p.last_seen, tz),
            ]
            for p in products
        ],
    )


def timeline(messages: list[notify_reporting.MessageRow], tz: str | None, lang: str | None) -> Any:
    """Messages to the customer on every channel, newest first."""
    if not messages:
        return empty(lang)
    return html.Ul(
        [
            html.Li(
                [
                    html.Small(
                        f"{format_time(m.created_at, tz)} · {m.channel} · {m.status}",
                        className="muted",
                    ),
                    html.Div(html.Strong(m.title)),
                    html.Div(m.body),
                ],
                className="message",
            )
            for m in messages
        ],
        className="messages",
    )


def preferences_view(prefs: notify_reporting.Preferences, lang: str | None) -> Any:
    """Quiet hours, caps and per-scope channels, read-only."""
    quiet = (
        f"{prefs.quiet_start:%H:%M}–{prefs.quiet_end:%H:%M}"
        if prefs.quiet_start and prefs.quiet_end
        else "—"
    )
    rows: list[list[Any]] = [
        [t("prefs.quiet", lang), quiet],
        [t("prefs.cap", lang), str(prefs.daily_cap or "—")],
        [t("prefs.digest", lang), str(prefs.digest_hour if prefs.digest_hour is not None else "—")],
    ]
    rows += [
        [
            f"{s.device_uid or '*'} / {s.moment_kind or '*'}",
            f"{', '.join(s.channels or []) or '—'} · {s.delivery or '—'}",
        ]
        for s in prefs.scopes
    ]
    return table(["", ""], rows)
