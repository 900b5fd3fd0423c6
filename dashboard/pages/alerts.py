"""Alerts: open ones first, most severe first; operators acknowledge or clear them in place."""

from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, State, callback_context, dcc, html
from dash.exceptions import PreventUpdate

from dashboard.auth import require
from dashboard.context import DashboardContext
from dashboard.i18n import format_time, t
from dashboard.ui import badge, empty, loading
from rules import reporting as rules_reporting

STATUS_FILTERS: dict[str, tuple[rules_reporting.AlertStatus, ...]] = {
    "open": ("active", "acknowledged"),
    "active": ("active",),
    "all": ("active", "acknowledged", "cleared"),
}


def layout(lang: str, _params: dict[str, str]) -> html.Div:
    """A status filter above the alert list."""
    return html.Div(
        [
            html.Div(
                [html.H2(t("alerts.title", lang)), html.Span(id="alerts-note", className="muted")],
                className="page-head",
            ),
            dcc.RadioItems(
                id="alerts-filter",
                value="open",
                inline=True,
                className="range-select",
                options=[{"label": t(f"filter.{k}", lang), "value": k} for k in STATUS_FILTERS],
            ),
            dcc.Store(id="alerts-changed"),
            loading(html.Div(id="alerts-list")),
        ],
        className="page-body",
    )


def register(app: Dash, ctx: DashboardContext) -> None:
    """List refresh on tick/filter/change; one callback handles every row's buttons."""

    @app.callback(
        Output("alerts-list", "children"),
        Input("alerts-filter", "value"),
        Input("alerts-changed", "data"),
        Input("tick", "n_intervals"),
        Input("viewer-tz", "data"),
        State("lang", "value"),
    )
    def refresh(
        status: str, _changed: Any, _n: int | None, tz: str | None, lang: str | None
    ) -> Any:
        require("operator")
        with ctx.connection() as conn:
            alerts = rules_reporting.list_alerts(
                conn, statuses=STATUS_FILTERS.get(status, STATUS_FILTERS["open"]), limit=200
            )
        return alert_table(alerts, tz, lang)

    @app.callback(
        Output("alerts-changed", "data"),
        Output("alerts-note", "children"),
        Input({"type": "alert-ack", "id": ALL}, "n_clicks"),
        Input({"type": "alert-clear", "id": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def act(_acks: list[int | None], _clears: list[int | None]) -> tuple[Any, str]:
        principal = require("operator")
        trigger = callback_context.triggered_id
        clicked = callback_context.triggered and callback_context.triggered[0].get("value")
        if not isinstance(trigger, dict) or not clicked:
            raise PreventUpdate  # rows re-rendered, nothing pressed
        alert_id = int(trigger["id"])
        client = ctx.client_reference()
        with ctx.connection() as conn:
            if trigger["type"] == "alert-ack":
                done = ctx.alert_actions.acknowledge(conn, alert_id, actor=principal, client=client)
            else:
                done = ctx.alert_actions.clear(conn, alert_id, actor=principal, client=client)
        return {"id": alert_id, "type": trigger["type"]}, f"#{alert_id}: {done}"


def alert_table(alerts: list[rules_reporting.AlertRow], tz: str | None, lang: str | None) -> Any:
    """Alerts as rows with their actions."""
    if not alerts:
        return empty(lang)
    header = html.Tr(
        [
            html.Th(h)
            for h in (
                t("alerts.severity", lang),
                t("col.uid", lang),
                t("col.rule", lang),
                t("alerts.state", lang),
                t("alerts.opened", lang),
                "",
                "",
            )
        ]
    )
    rows = [
        html.Tr(
            [
                html.Td(badge(a.severity, a.severity)),
                html.Td(dcc.Link(a.device_uid, href=f"/devices/{a.device_uid}")),
                html.Td(a.rule_key),
                html.Td(badge(a.status, a.status), id={"type": "alert-status", "id": a.id}),
                html.Td(format_time(a.opened_at, tz)),
                html.Td(
                    html.Button(
                        t("alerts.ack", lang),
                        id={"type": "alert-ack", "id": a.id},
                        className="btn btn-small",
                        disabled=a.status != "active",
                    )
                ),
                html.Td(
                    html.Button(
                        t("alerts.clear", lang),
                        id={"type": "alert-clear", "id": a.id},
                        className="btn btn-small btn-ghost",
                        disabled=a.status == "cleared",
                    )
                ),
            ],
            className=f"alert-row alert-{a.status}",
        )
        for a in alerts
    ]
    return html.Table([html.Thead(header), html.Tbody(rows)], className="table", id="alerts-table")
