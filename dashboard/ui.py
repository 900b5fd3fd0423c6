"""Small building blocks shared by the pages: cards, figures, tables and badges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from dashboard.i18n import t

PALETTE = {
    "online": "#1f9d55",
    "offline": "#9aa5b1",
    "info": "#3b82f6",
    "warning": "#f59e0b",
    "critical": "#dc2626",
    "accent": "#7c3aed",
}


def card(title: str, body: Any, *, card_id: str | None = None, wide: bool = False) -> html.Div:
    """A titled panel."""
    panel = html.Div(
        [html.H3(title, className="card-title"), html.Div(body, className="card-body")],
        className="card card-wide" if wide else "card",
    )
    if card_id:
        panel.id = card_id  # type: ignore[attr-defined]
    return panel


def kpi(label: str, value: str, *, kpi_id: str) -> html.Div:
    """A big number with its label."""
    return html.Div(
        [html.Div(value, className="kpi-value", id=kpi_id), html.Div(label, className="kpi-label")],
        className="kpi",
    )


def loading(child: Any) -> dcc.Loading:
    """A spinner while the child's callback runs."""
    return dcc.Loading(child, type="dot", color=PALETTE["accent"], delay_show=300)


def badge(text: str, kind: str) -> html.Span:
    """A coloured label (online, offline, info, warning, critical, ...)."""
    return html.Span(text, className=f"badge badge-{kind}")


def empty(lang: str | None, key: str = "common.none") -> html.Div:
    """The message shown where there is nothing to show."""
    return html.Div(t(key, lang), className="empty")


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, table_id: str | None = None
) -> Any:
    """A plain HTML table (Dash escapes every text child, so device names cannot inject)."""
    element = html.Table(
        [
            html.Thead(html.Tr([html.Th(h) for h in headers])),
            html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows]),
        ],
        className="table",
    )
    if table_id:
        element.id = table_id  # type: ignore[attr-defined]
    return element


def base_figure(*, height: int = 260) -> go.Figure:
    """An empty figure in the dashboard's style."""
    fig = go.Figure()
    fig.update_layout(
        template="none",  # the default template adds ~10 kB to every figure sent
        height=height,
        margin={"l": 40, "r": 10, "t": 10, "b": 30},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="#ffffff",
        font={"family": "Inter, 'Noto Sans JP', system-ui, sans-serif", "size": 12},
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(gridcolor="#eef0f4")
    fig.update_yaxes(gridcolor="#eef0f4")
    return fig


def graph(fig: go.Figure, graph_id: str | None = None) -> dcc.Graph:
    """A figure without the plotly toolbar clutter."""
    element = dcc.Graph(figure=fig, config={"displaylogo": False, "displayModeBar": False})
    if graph_id:
        element.id = graph_id  # type: ignore[attr-defined]
    return element
