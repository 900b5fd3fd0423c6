"""Small building blocks shared by the pages: cards, figures, tables and badges."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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


class Figure(dict[str, Any]):
    """A plotly figure as a plain dict (graph_objects validation costs ~30 ms per figure)."""

    def add_trace(self, trace_type: str, **trace: Any) -> Figure:
        """Append a trace of `trace_type` (bar, scatter, scattergl...)."""
        self["data"].append({"type": trace_type, **trace})
        return self

    def update_layout(self, **layout: Any) -> Figure:
        """Merge top-level layout keys (nested dicts are merged one level deep)."""
        for key, value in layout.items():
            current = self["layout"].get(key)
            self["layout"][key] = (
                {**current, **value}
                if isinstance(current, dict) and isinstance(value, dict)
                else value
            )
        return self


def base_figure(*, height: int = 260) -> Figure:
    """An empty figure in the dashboard's style."""
    grid = {"gridcolor": "#eef0f4", "zeroline": False}
    return Figure(
        data=[],
        layout={
            "height": height,
            "margin": {"l": 40, "r": 10, "t": 10, "b": 30},
            "paper_bgcolor": "rgba(0,0,0,0)",
            "plot_bgcolor": "#ffffff",
            "font": {"family": "Inter, 'Noto Sans JP', system-ui, sans-serif", "size": 12},
            "legend": {"orientation": "h", "y": -0.2},
            "xaxis": dict(grid),
            "yaxis": dict(grid),
        },
    )


def graph(fig: Figure, graph_id: str | None = None) -> dcc.Graph:
    """A figure without the plotly toolbar clutter."""
    element = dcc.Graph(figure=fig, config={"displaylogo": False, "displayModeBar": False})
    if graph_id:
        element.id = graph_id  # type: ignore[attr-defined]
    return element
