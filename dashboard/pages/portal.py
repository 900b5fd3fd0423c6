"""The customer portal: my products and their state, the friend feed, notification preferences.

Every callback takes the customer from the server-side session; a product chosen in the
browser is shown only when that customer currently has it.
"""

from __future__ import annotations

from typing import Any

import dash
from dash import Dash, Input, Output, State, dcc, html
from pydantic import ValidationError

from api.audit import AuditAction, customer_public_id
from dashboard.actions import record_person_action
from dashboard.auth import Principal, require
from dashboard.context import DashboardContext
from dashboard.i18n import format_time, t
from dashboard.metric_labels import format_reading, metric_label, metric_name
from dashboard.pages.customers import preferences_view
from dashboard.pages.device import chart_series, numeric_metrics, series_figure, twin_table
from dashboard.ui import badge, base_figure, card, empty, graph, loading
from devices import reporting as devices_reporting
from notify import reporting as notify_reporting
from notify import service as notify_service
from notify.errors import NotifyError
from notify.models import ChannelName, Delivery, PreferenceUpdate


def layout(lang: str, _params: dict[str, str]) -> html.Div:
    """Products on top, then the chosen product's chart, the feed and preferences."""
    return html.Div(
        [
            html.Div(html.H2(t("portal.title", lang)), className="page-head"),
            loading(html.Div(id="portal-products", className="products")),
            html.Div(
                [
                    card(
                        "",
                        [
                            dcc.Dropdown(id="portal-product", clearable=False, className="filter"),
                            loading(html.Div(id="portal-product-detail")),
                        ],
                        wide=True,
                    ),
                    card(t("portal.feed", lang), loading(html.Div(id="portal-feed"))),
                    card(
                        t("portal.preferences", lang),
                        [loading(html.Div(id="portal-prefs")), preferences_form(lang)],
                    ),
                ],
                className="grid",
            ),
        ],
        className="page-body",
    )


def register(app: Dash, ctx: DashboardContext) -> None:
    """Products, feed and preferences of the signed-in customer only."""

    @app.callback(
        Output("portal-products", "children"),
        Output("portal-product", "options"),
        Input("tick", "n_intervals"),
        Input("viewer-tz", "data"),
        State("lang", "value"),
    )
    def products(_n: int | None, tz: str | None, lang: str | None) -> tuple[Any, Any]:
        customer_id = require("customer").customer_id
        assert customer_id is not None
        with ctx.connection() as conn:
            mine = devices_reporting.customer_devices(
                conn, customer_id, online_window_s=ctx.online_window_s
            )
        if not mine:
            return empty(lang), []
        return [product_card(p, ctx, tz, lang) for p in mine], [
            {"label": p.nickname or p.uid, "value": p.uid} for p in mine
        ]

    @app.callback(
        Output("portal-product", "value"),
        Input("portal-product", "options"),
        State("portal-product", "value"),
    )
    def default_product(options: list[dict[str, str]] | None, current: str | None) -> str | None:
        require("customer")
        values = [o["value"] for o in options or []]
        return current if current in values else (values[0] if values else None)

    @app.callback(
        Output("portal-product-detail", "children"),
        Input("portal-product", "value"),
        State("viewer-tz", "data"),
        State("lang", "value"),
    )
    def product_detail(uid: str | None, tz: str | None, lang: str | None) -> Any:
        customer_id = require("customer").customer_id
        if not uid:
            return empty(lang)
        with ctx.connection() as conn:
            detail = devices_reporting.device_detail(
                conn, str(uid)[:64], customer_id=customer_id, online_window_s=ctx.online_window_s
            )
        if detail is None:
            return empty(lang, "common.not_found")
        model = ctx.models.get(detail.model_id)
        metrics = numeric_metrics(model)
        title = metric_label(metrics[0], lang, model) if metrics else ""
        fig = (
            series_figure(chart_series(ctx, detail, metrics[0], "24h"), tz, y_title=title)
            if metrics
            else base_figure()
        )
        return [
            html.H4(title, id="portal-chart-title"),
            graph(fig, "portal-chart"),
            twin_table(detail, tz, lang, model),
        ]

    @app.callback(
        Output("prefs-scope", "options"),
        Input("portal-product", "options"),
        State("lang", "value"),
    )
    def scopes(products: list[dict[str, str]] | None, lang: str | None) -> list[dict[str, str]]:
        require("customer")
        return [{"label": t("prefs.all", lang), "value": ""}, *(products or [])]

    @app.callback(
        Output("prefs-saved", "data"),
        Output("prefs-note", "children"),
        Input("prefs-save", "n_clicks"),
        State("prefs-scope", "value"),
        State("prefs-channels", "value"),
        State("prefs-delivery", "value"),
        State("lang", "value"),
        prevent_initial_call=True,
    )
    def save(
        _clicks: int | None, scope: str | None, channels: Any, delivery: Any, lang: str | None
    ) -> tuple[Any, str]:
        refused = save_preference(ctx, require("customer"), scope, channels, delivery)
        if refused:
            return dash.no_update, f"{t('prefs.refused', lang)} ({refused})"
        return {"scope": scope}, t("prefs.saved", lang)

    @app.callback(
        Output("portal-feed", "children"),
        Output("portal-prefs", "children"),
        Input("tick", "n_intervals"),
        Input("prefs-saved", "data"),
        Input("viewer-tz", "data"),
        State("lang", "value"),
    )
    def feed(_n: int | None, _saved: Any, tz: str | None, lang: str | None) -> tuple[Any, Any]:
        customer_id = require("customer").customer_id
        assert customer_id is not None
        with ctx.connection() as conn:
            posts = notify_reporting.customer_feed(conn, customer_id, limit=30)
            prefs = notify_reporting.customer_preferences(conn, customer_id)
        feed_view = (
            html.Ul(
                [
                    html.Li(
                        [
                            badge(p.severity, p.severity),
                            html.Strong(p.title),
                            html.Div(p.body),
                            html.Small(format_time(p.created_at, tz), className="muted"),
                        ],
                        className="message",
                    )
                    for p in posts
                ],
                className="messages",
                id="feed-list",
            )
            if posts
            else empty(lang)
        )
        return feed_view, preferences_view(prefs, lang)


def preferences_form(lang: str) -> html.Div:
    """Channels and delivery for all my products or one of them."""
    return html.Div(
        [
            dcc.Dropdown(id="prefs-scope", placeholder=t("prefs.all", lang), className="filter"),
            dcc.Checklist(
                id="prefs-channels",
                options=[{"label": c.value, "value": c.value} for c in ChannelName],
                value=["feed"],
                inline=True,
                className="range-select",
            ),
            dcc.RadioItems(
                id="prefs-delivery",
                options=[{"label": d.value, "value": d.value} for d in Delivery],
                value="instant",
                inline=True,
                className="range-select",
            ),
            html.Button(t("prefs.save", lang), id="prefs-save", className="btn btn-small"),
            html.Span(id="prefs-note", className="muted"),
            dcc.Store(id="prefs-saved"),
        ],
        className="prefs-form",
    )


def save_preference(
    ctx: DashboardContext, person: Principal, scope: str | None, channels: Any, delivery: Any
) -> str | None:
    """Store one preference through notify (and the audit log); why it was refused, or None."""
    assert person.customer_id is not None
    try:
        update = PreferenceUpdate(device_uid=scope or None, channels=channels, delivery=delivery)
    except ValidationError:
        return "invalid"
    try:
        with ctx.connection() as conn:
            notify_service.set_preference(conn, person.customer_id, update)
            record_person_action(
                conn,
                AuditAction.PREFERENCE_UPDATED,
                person,
                target=("customer", customer_public_id(conn, person.customer_id)),
                client=ctx.client_reference(),
                details={
                    "device": update.device_uid,
                    "channels": update.channels,
                    "delivery": update.delivery,
                },
            )
    except NotifyError:  # e.g. a device this customer does not have
        return "not found"
    return None


def product_card(
    p: devices_reporting.DeviceDetail, ctx: DashboardContext, tz: str | None, lang: str | None
) -> html.Div:
    """One of my products: name, connection and a few current readings."""
    model = ctx.models.get(p.model_id)
    kind = model.names["ja" if lang == "ja" else "en"] if model else p.model_id
    readings = [
        html.Li(f"{metric_name(name, lang)}: {format_reading(name, value, lang, model)}")
        for name, value in list(p.reported.items())[:4]
    ]
    status = "online" if p.online else "offline"
    return html.Div(
        [
            html.Div(
                [html.Strong(p.nickname or p.uid), badge(t(f"common.{status}", lang), status)],
                className="product-title",
            ),
            html.Div(kind, className="muted"),
            html.Ul(readings, className="readings"),
            html.Small(
                f"{t('col.last_seen', lang)}: {format_time(p.last_seen, tz)}", className="muted"
            ),
        ],
        className="product-card",
        id={"type": "product-card", "uid": p.uid},
    )
