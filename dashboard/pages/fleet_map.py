"""Where products are, drawn without map tiles; dense views are clustered in the database."""

from __future__ import annotations

import math
from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dashboard.auth import require
from dashboard.context import DashboardContext
from dashboard.i18n import t
from dashboard.ui import Figure, base_figure, card, loading
from devices import reporting as devices_reporting

CELLS_ACROSS = 60
MODEL_COLOURS = ("#2563eb", "#059669", "#d97706", "#db2777", "#7c3aed", "#0891b2")


def layout(lang: str, _params: dict[str, str]) -> html.Div:
    """A plain lat/lon canvas; zooming asks the server for the devices in view."""
    return html.Div(
        [
            html.Div(
                [html.H2(t("map.title", lang)), html.Span(id="map-note", className="muted")],
                className="page-head",
            ),
            card(
                "",
                loading(
                    dcc.Graph(
                        id="fleet-map",
                        figure=base_figure(height=620),
                        config={"displaylogo": False, "scrollZoom": True},
                        style={"height": "620px"},
                    )
                ),
                wide=True,
            ),
        ],
        className="page-body",
    )


def bounds_from_relayout(relayout: dict[str, Any] | None) -> devices_reporting.Bounds:
    """The lat/lon rectangle the viewer zoomed to (the whole world when unknown)."""
    keys = ("yaxis.range[0]", "yaxis.range[1]", "xaxis.range[0]", "xaxis.range[1]")
    if not relayout or not all(k in relayout for k in keys):
        return devices_reporting.Bounds()
    try:
        lat0, lat1, lon0, lon1 = (float(relayout[k]) for k in keys)
    except (TypeError, ValueError):
        return devices_reporting.Bounds()
    clamp = lambda v, lim: max(-lim, min(lim, v))  # noqa: E731
    return devices_reporting.Bounds(
        clamp(min(lat0, lat1), 90),
        clamp(max(lat0, lat1), 90),
        clamp(min(lon0, lon1), 180),
        clamp(max(lon0, lon1), 180),
    )


def register(app: Dash, ctx: DashboardContext) -> None:
    """Redraw on zoom and on every tick, keeping the viewer's zoom (uirevision)."""

    @app.callback(
        Output("fleet-map", "figure"),
        Output("map-note", "children"),
        Input("fleet-map", "relayoutData"),
        Input("tick", "n_intervals"),
        State("lang", "value"),
    )
    def redraw(
        relayout: dict[str, Any] | None, _n: int | None, lang: str | None
    ) -> tuple[Any, str]:
        require("operator")
        bounds = bounds_from_relayout(relayout)
        limit = ctx.settings.dashboard.map_max_points
        with ctx.connection() as conn:
            in_view = devices_reporting.count_positions(conn, bounds)
            if in_view > limit:
                cell = _cell_size(conn, bounds)
                points = devices_reporting.clustered_positions(
                    conn, bounds, cell_deg=cell, online_window_s=ctx.online_window_s
                )
                return _cluster_figure(points), f"{in_view:,} · {t('map.clustered', lang)}"
            points = devices_reporting.device_positions(
                conn, bounds, limit=limit, online_window_s=ctx.online_window_s
            )
        return _points_figure(points, ctx, lang), f"{in_view:,}"


def _cell_size(conn: Any, bounds: devices_reporting.Bounds) -> float:
    span = max(bounds.lat_max - bounds.lat_min, bounds.lon_max - bounds.lon_min)
    if span >= 180:  # whole world: size cells by where devices actually are
        extent = devices_reporting.position_extent(conn)
        if extent is not None:
            span = max(extent.lat_max - extent.lat_min, extent.lon_max - extent.lon_min, 0.01)
    return max(span / CELLS_ACROSS, 1e-4)


def _frame(fig: Figure, mid_lat: float) -> Figure:
    # Equal-distance axes at this latitude: one degree of longitude is cos(lat) as long.
    fig.update_layout(
        uirevision="fleet-map",
        dragmode="pan",
        showlegend=True,
        plot_bgcolor="#f4f6fb",
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
    )
    ratio = 1 / max(math.cos(math.radians(mid_lat)), 0.2)
    fig.update_layout(
        yaxis={"scaleanchor": "x", "scaleratio": ratio, "title": {"text": "lat"}},
        xaxis={"title": {"text": "lon"}},
    )
    return fig


def _points_figure(
    points: list[devices_reporting.MapPoint], ctx: DashboardContext, lang: str | None
) -> Figure:
    fig = base_figure(height=620)
    by_model: dict[str, list[devices_reporting.MapPoint]] = {}
    for p in points:
        by_model.setdefault(p.model_id or "?", []).append(p)
    for i, (model_id, group) in enumerate(sorted(by_model.items())):
        model = ctx.models.get(model_id)
        name = model.names["ja" if lang == "ja" else "en"] if model else model_id
        fig.add_trace(
            "scattergl",
            **dict(
                x=[p.lon for p in group],
                y=[p.lat for p in group],
                mode="markers",
                name=name,
                text=[p.uid for p in group],
                hovertemplate="%{text}<extra></extra>",
                marker={
                    "size": 7,
                    "color": MODEL_COLOURS[i % len(MODEL_COLOURS)],
                    "opacity": [1.0 if p.online else 0.35 for p in group],
                },
            ),
        )
    mid = sum(p.lat for p in points) / len(points) if points else 35.68
    return _frame(fig, mid)


def _cluster_figure(points: list[devices_reporting.MapPoint]) -> Figure:
    fig = base_figure(height=620)
    largest = max((p.count for p in points), default=1)
    fig.add_trace(
        "scattergl",
        **dict(
            x=[p.lon for p in points],
            y=[p.lat for p in points],
            mode="markers",
            name="clusters",
            text=[f"{p.count:,} ({p.online:,} online)" for p in points],
            hovertemplate="%{text}<extra></extra>",
            marker={
                "size": [8 + 32 * math.sqrt(p.count / largest) for p in points],
                "color": [p.online / p.count for p in points],
                "colorscale": "Viridis",
                "cmin": 0,
                "cmax": 1,
                "opacity": 0.8,
                "line": {"width": 0},
                "colorbar": {"title": {"text": "online"}, "thickness": 10},
            },
        ),
    )
    mid = sum(p.lat for p in points) / len(points) if points else 35.68
    fig.update_layout(showlegend=False)
    return _frame(fig, mid)
