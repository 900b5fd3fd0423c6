"""Fleet overview: devices online by model, message rate, open alerts and ingest health."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from dash import Dash, Input, Output, State, html

from dashboard.auth import require
from dashboard.context import DashboardContext
from dashboard.i18n import format_time, t
from dashboard.ui import PALETTE, Figure, base_figure, card, graph, kpi, loading
from devices import reporting as devices_reporting
from ingest import reporting as ingest_reporting
from rules import reporting as rules_reporting


def layout(lang: str, _params: dict[str, str]) -> html.Div:
    """The overview's frame; the figures arrive with the first tick."""
    return html.Div(
        [
            html.Div(
                [html.H2(t("fleet.title", lang)), html.Span(id="fleet-updated", className="muted")],
                className="page-head",
            ),
            loading(html.Div(id="fleet-body", className="grid")),
        ],
        className="page-body",
    )


def register(app: Dash, ctx: DashboardContext) -> None:
    """The overview refreshes on every tick, in place."""

    @app.callback(
        Output("fleet-body", "children"),
        Output("fleet-updated", "children"),
        Input("tick", "n_intervals"),
        Input("viewer-tz", "data"),
        State("lang", "value"),
    )
    def refresh(_n: int | None, tz: str | None, lang: str | None) -> tuple[Any, str]:
        require("operator")
        with ctx.connection() as conn:
            by_model = devices_reporting.fleet_status_by_model(conn, ctx.online_window_s)
            alerts = rules_reporting.open_alerts_by_severity(conn)
            health = ingest_reporting.ingest_health(conn)
        updated = f"{t('common.updated', lang)} {format_time(datetime.now(UTC), tz, seconds=True)}"
        return _body(by_model, alerts, health, lang, ctx), updated


def _body(
    by_model: list[devices_reporting.ModelStatus],
    alerts: dict[str, int],
    health: ingest_reporting.IngestHealth,
    lang: str | None,
    ctx: DashboardContext,
) -> list[Any]:
    total = sum(m.total for m in by_model)
    online = sum(m.online for m in by_model)
    lag = "—" if health.lag_s is None else f"{health.lag_s:,.1f}"
    kpis = html.Div(
        [
            kpi(t("fleet.devices", lang), f"{total:,}", kpi_id="kpi-devices"),
            kpi(t("fleet.online", lang), f"{online:,}", kpi_id="kpi-online"),
            kpi(t("fleet.msg_rate", lang), f"{health.messages_per_s:,.1f}", kpi_id="kpi-rate"),
            kpi(t("fleet.active_alerts", lang), f"{sum(alerts.values()):,}", kpi_id="kpi-alerts"),
            kpi(t("fleet.lag", lang), lag, kpi_id="kpi-lag"),
            kpi(t("fleet.gaps", lang), f"{health.open_gaps:,}", kpi_id="kpi-gaps"),
        ],
        className="kpis",
    )
    return [
        kpis,
        card(t("fleet.by_model", lang), graph(_model_figure(by_model, lang, ctx), "fleet-models")),
        card(t("fleet.alerts_by_severity", lang), graph(_alert_figure(alerts), "fleet-alerts")),
        card(t("fleet.dead_letters", lang), graph(_dead_letter_figure(health), "fleet-dlq")),
    ]


def _model_figure(
    by_model: list[devices_reporting.ModelStatus], lang: str | None, ctx: DashboardContext
) -> Figure:
    models = ctx.models
    names = [
        models[m.model_id].names["ja" if lang == "ja" else "en"]
        if m.model_id in models
        else m.model_id
        for m in by_model
    ]
    fig = base_figure()
    fig.add_trace(
        "bar",
        name=t("common.online", lang),
        x=names,
        y=[m.online for m in by_model],
        marker={"color": PALETTE["online"]},
    )
    fig.add_trace(
        "bar",
        name=t("common.offline", lang),
        x=names,
        y=[m.offline for m in by_model],
        marker={"color": PALETTE["offline"]},
    )
    fig.update_layout(barmode="stack")
    return fig


def _alert_figure(alerts: dict[str, int]) -> Figure:
    fig = base_figure()
    severities = list(alerts)
    fig.add_trace(
        "bar",
        x=severities,
        y=[alerts[s] for s in severities],
        marker={"color": [PALETTE.get(s, PALETTE["info"]) for s in severities]},
    )
    fig.update_layout(yaxis=_count_axis(max(alerts.values(), default=0)))
    return fig


def _count_axis(largest: int) -> dict[str, Any]:
    """Whole-number ticks for counts (plotly would show 0.2 steps for small ones)."""
    return {"tick0": 0, "dtick": max(1, math.ceil(largest / 5)), "rangemode": "tozero"}


def _dead_letter_figure(health: ingest_reporting.IngestHealth) -> Figure:
    fig = base_figure()
    reasons = list(health.dead_letters_by_reason) or ["—"]
    counts = [health.dead_letters_by_reason.get(r, 0) for r in reasons]
    fig.add_trace("bar", y=reasons, x=counts, orientation="h", marker={"color": PALETTE["warning"]})
    fig.update_layout(
        margin={"l": 90, "r": 10, "t": 10, "b": 30}, xaxis=_count_axis(max(counts, default=0))
    )
    return fig
