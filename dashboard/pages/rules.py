"""Rules: which are enabled, what they apply to, and what they fired recently."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboard.auth import require
from dashboard.context import DashboardContext
from dashboard.i18n import format_time, t
from dashboard.ui import badge, card, empty, loading, table
from rules import reporting as rules_reporting


def layout(lang: str, _params: dict[str, str]) -> html.Div:
    """Rules and recent firings side by side."""
    return html.Div(
        [
            html.Div(html.H2(t("rules.title", lang)), className="page-head"),
            loading(html.Div(id="rules-body", className="grid")),
        ],
        className="page-body",
    )


def register(app: Dash, ctx: DashboardContext) -> None:
    """Refresh on tick."""

    @app.callback(
        Output("rules-body", "children"),
        Input("tick", "n_intervals"),
        Input("viewer-tz", "data"),
        State("lang", "value"),
    )
    def refresh(_n: int | None, tz: str | None, lang: str | None) -> Any:
        require("operator")
        with ctx.connection() as conn:
            rules = rules_reporting.rules_overview(conn)
            firings = rules_reporting.recent_moments(conn, limit=30)
        rules_view = (
            table(
                [
                    t("col.rule", lang),
                    t("col.scope", lang),
                    t("rules.enabled", lang),
                    t("col.firings_24h", lang),
                    t("nav.alerts", lang),
                    t("col.last_fired", lang),
                ],
                [
                    [
                        r.key,
                        r.scope,
                        badge(
                            t("rules.on" if r.enabled else "rules.off", lang),
                            "online" if r.enabled else "offline",
                        ),
                        r.firings_24h,
                        r.open_alerts,
                        format_time(r.last_fired_at, tz),
                    ]
                    for r in rules
                ],
                table_id="rules-table",
            )
            if rules
            else empty(lang)
        )
        firings_view = (
            table(
                [
                    "",
                    t("col.kind", lang),
                    t("col.uid", lang),
                    t("col.rule", lang),
                    t("col.time", lang),
                ],
                [
                    [
                        badge(m.severity, m.severity),
                        m.kind,
                        dcc.Link(m.device_uid, href=f"/devices/{m.device_uid}"),
                        m.rule_key or "—",
                        format_time(m.occurred_at, tz),
                    ]
                    for m in firings
                ],
            )
            if firings
            else empty(lang)
        )
        return [
            card(t("rules.title", lang), rules_view, wide=True),
            card(t("rules.firings", lang), firings_view, wide=True),
        ]
