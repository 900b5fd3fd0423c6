"""Device detail: telemetry downsampled in the database, twin, alerts, messages and commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboard.auth import require
from dashboard.context import DashboardContext
from dashboard.i18n import format_time, t
from dashboard.metric_labels import BOOLEAN_LABELS, metric_label
from dashboard.ui import PALETTE, Figure, badge, base_figure, card, empty, graph, loading, table
from devices import reporting as devices_reporting
from devices.catalog import ProductModel
from notify import reporting as notify_reporting
from rules import reporting as rules_reporting
from store import timeseries
from store.timeseries import BucketStat

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
CHART_BUCKETS = 300


def layout(lang: str, params: dict[str, str]) -> html.Div:
    """The frame of one device's page; its content is loaded by callbacks."""
    return html.Div(
        [
            dcc.Store(id="device-uid", data=params["uid"]),
            loading(html.Div(id="device-head", className="page-head")),
            html.Div(
                [
                    card(
                        t("device.telemetry", lang),
                        [
                            html.Div(
                                [
                                    dcc.Dropdown(
                                        id="device-metric", clearable=False, className="filter"
                                    ),
                                    dcc.RadioItems(
                                        id="device-range",
                                        options=[{"label": k, "value": k} for k in RANGES],
                                        value="24h",
                                        inline=True,
                                        className="range-select",
                                    ),
                                ],
                                className="filters",
                            ),
                            loading(graph(base_figure(height=300), "device-chart")),
                        ],
                        wide=True,
                    ),
                    loading(html.Div(id="device-panels", className="grid")),
                ],
                className="stack",
            ),
        ],
        className="page-body",
    )


def chart_series(
    ctx: DashboardContext,
    detail: devices_reporting.DeviceDetail,
    metric: str,
    range_key: str,
    *,
    now: datetime | None = None,
) -> list[BucketStat]:
    """One metric of the device over the chosen range, downsampled by the database."""
    span = RANGES.get(range_key, RANGES["24h"])
    end = now or datetime.now(UTC)
    bucket = max(timedelta(seconds=1), span / CHART_BUCKETS)
    with ctx.connection() as conn:
        try:
            series = timeseries.bucketed_series(conn, detail.id, [metric], end - span, end, bucket)
        except timeseries.SeriesQueryError:  # no slot for this metric yet: nothing stored
            return []
    return series.get(metric, [])


def numeric_metrics(model: ProductModel | None) -> list[str]:
    """Metrics worth charting: numbers and integers."""
    if model is None:
        return []
    return [name for name, spec in model.metrics.items() if spec.type in ("number", "integer")]


def register(app: Dash, ctx: DashboardContext) -> None:
    """Header, panels and chart of the device page."""

    @app.callback(
        Output("device-metric", "options"),
        Output("device-metric", "value"),
        Input("device-uid", "data"),
        State("lang", "value"),
    )
    def metrics(uid: str, lang: str | None) -> tuple[list[dict[str, str]], str | None]:
        require("operator")
        with ctx.connection() as conn:
            detail = devices_reporting.device_detail(conn, str(uid)[:64])
        model = ctx.models.get(detail.model_id) if detail else None
        names = numeric_metrics(model)
        options = [{"label": metric_label(n, lang, model), "value": n} for n in names]
        return options, (names[0] if names else None)

    @app.callback(
        Output("device-chart", "figure"),
        Input("device-metric", "value"),
        Input("device-range", "value"),
        State("device-uid", "data"),
        State("viewer-tz", "data"),
        State("lang", "value"),
    )
    def chart(
        metric: str | None, range_key: str, uid: str, tz: str | None, lang: str | None
    ) -> Figure:
        require("operator")
        with ctx.connection() as conn:
            detail = devices_reporting.device_detail(conn, str(uid)[:64])
        fig = base_figure(height=300)
        if detail is None or not metric:
            return fig
        model = ctx.models.get(detail.model_id)
        if metric not in numeric_metrics(model):
            return fig
        points = chart_series(ctx, detail, metric, range_key)
        return series_figure(points, tz, y_title=metric_label(metric, lang, model))

    @app.callback(
        Output("device-head", "children"),
        Output("device-panels", "children"),
        Input("device-uid", "data"),
        Input("tick", "n_intervals"),
        Input("viewer-tz", "data"),
        State("lang", "value"),
    )
    def panels(uid: str, _n: int | None, tz: str | None, lang: str | None) -> tuple[Any, Any]:
        require("operator")
        with ctx.connection() as conn:
            detail = devices_reporting.device_detail(
                conn, str(uid)[:64], online_window_s=ctx.online_window_s
            )
            if detail is None:
                return html.H2(t("common.not_found", lang)), None
            alerts = rules_reporting.list_alerts(
                conn, statuses=("active", "acknowledged", "cleared"), device_id=detail.id, limit=20
            )
            moments = rules_reporting.recent_moments(conn, device_id=detail.id, limit=20)
            messages = notify_reporting.device_messages(conn, detail.id, limit=20)
            commands = devices_reporting.recent_commands(conn, detail.id, limit=20)
        model = ctx.models.get(detail.model_id)
        return device_head(detail, tz, lang, model), [
            card(t("device.twin", lang), twin_table(detail, tz, lang, model)),
            card(t("device.alerts", lang), _alerts(alerts, tz, lang)),
            card(t("device.moments", lang), _moments(moments, tz, lang)),
            card(t("device.messages", lang), _messages(messages, tz, lang)),
            card(t("device.commands", lang), _commands(commands, tz, lang)),
        ]


def series_figure(points: list[BucketStat], tz: str | None, *, y_title: str = "") -> Figure:
    """Mean line with a min–max band, in the viewer's time zone; `y_title` names the metric."""
    fig = base_figure(height=300)
    if y_title:
        fig.update_layout(yaxis={"title": {"text": y_title}}, margin={"l": 60})
    times = [format_time(p.bucket, tz, seconds=True) for p in points]
    fig.add_trace(
        "scatter",
        x=times,
        y=[p.max for p in points],
        mode="lines",
        line={"width": 0},
        showlegend=False,
        hoverinfo="skip",
    )
    fig.add_trace(
        "scatter",
        x=times,
        y=[p.min for p in points],
        mode="lines",
        line={"width": 0},
        fill="tonexty",
        fillcolor="rgba(124,58,237,0.15)",
        showlegend=False,
        hoverinfo="skip",
    )
    fig.add_trace(
        "scatter",
        x=times,
        y=[p.avg for p in points],
        mode="lines",
        name="mean",
        line={"color": PALETTE["accent"], "width": 2},
        showlegend=False,
    )
    return fig


def device_head(
    detail: devices_reporting.DeviceDetail,
    tz: str | None,
    lang: str | None,
    model: ProductModel | None = None,
) -> Any:
    """Title line: uid, nickname, model, connection badge and last seen."""
    status = "online" if detail.online else "offline"
    kind = model.names.get("ja" if lang == "ja" else "en", detail.model_id) if model else None
    return [
        html.H2([detail.uid, html.Span(detail.nickname or "", className="muted nick")]),
        html.Div(
            [
                badge(t(f"common.{status}", lang), status),
                html.Span(kind or detail.model_id, className="muted"),
                html.Span(f"fw {detail.firmware or '—'}", className="muted"),
                html.Span(
                    f"{t('col.last_seen', lang)}: {format_time(detail.last_seen, tz)}",
                    className="muted",
                ),
            ],
            className="head-meta",
        ),
    ]


def _value(value: Any) -> str:
    if isinstance(value, dict) and "v" in value:
        value = value["v"]
    if isinstance(value, float):
        return f"{value:,.2f}"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)


def _shown(value: Any, lang: str | None) -> str:
    """A twin value for people: booleans as words in their language, numbers rounded."""
    raw = value["v"] if isinstance(value, dict) and "v" in value else value
    if isinstance(raw, bool):
        return BOOLEAN_LABELS[raw][1 if lang == "ja" else 0]
    return _value(value)


def twin_table(
    detail: devices_reporting.DeviceDetail,
    tz: str | None,
    lang: str | None,
    model: ProductModel | None = None,
) -> Any:
    """Each metric (by its human name and unit): what the device reported, when, and desired."""
    present = set(detail.reported) | set(detail.desired)
    if not present:
        return empty(lang)
    # The product model's order first (the way its maker groups them), then anything else.
    known = [n for n in (model.metrics if model else {}) if n in present]
    names = known + sorted(present - set(known))
    rows = []
    for name in names:
        reported = detail.reported.get(name)
        at = reported.get("t") if isinstance(reported, dict) else None
        when = (
            format_time(datetime.fromisoformat(at), tz, seconds=True)
            if isinstance(at, str)
            else "—"
        )
        desired = detail.desired.get(name)
        mismatch = (
            desired is not None and reported is not None and _value(desired) != _value(reported)
        )
        rows.append(
            [
                metric_label(name, lang, model),
                _shown(reported, lang) if reported is not None else "—",
                when,
                html.Span(_shown(desired, lang), className="mismatch" if mismatch else "")
                if desired is not None
                else "",
            ]
        )
    return table(
        [t("device.metric", lang), t("device.reported", lang), "", t("device.desired", lang)],
        rows,
        table_id="twin-table",
    )


def _alerts(alerts: list[rules_reporting.AlertRow], tz: str | None, lang: str | None) -> Any:
    if not alerts:
        return empty(lang)
    return table(
        [
            t("alerts.severity", lang),
            t("col.rule", lang),
            t("alerts.state", lang),
            t("alerts.opened", lang),
        ],
        [
            [badge(a.severity, a.severity), a.rule_key, a.status, format_time(a.opened_at, tz)]
            for a in alerts
        ],
    )


def _moments(moments: list[rules_reporting.MomentRow], tz: str | None, lang: str | None) -> Any:
    if not moments:
        return empty(lang)
    return table(
        ["", t("col.kind", lang), t("col.time", lang)],
        [[badge(m.severity, m.severity), m.kind, format_time(m.occurred_at, tz)] for m in moments],
    )


def _messages(messages: list[notify_reporting.MessageRow], tz: str | None, lang: str | None) -> Any:
    if not messages:
        return empty(lang)
    return html.Ul(
        [
            html.Li(
                [
                    html.Strong(m.title),
                    html.Div(m.body),
                    html.Small(
                        f"{m.channel} · {m.status} · {format_time(m.created_at, tz)}",
                        className="muted",
                    ),
                ],
                className="message",
            )
            for m in messages
        ],
        className="messages",
    )


def _commands(
    commands: list[devices_reporting.CommandRow], tz: str | None, lang: str | None
) -> Any:
    if not commands:
        return empty(lang)
    return table(
        [t("col.command", lang), t("col.args", lang), t("col.status", lang), t("col.time", lang)],
        [[c.name, _value(c.args), c.status, format_time(c.created_at, tz)] for c in commands],
    )
