"""The devices table: server-side paging, filtering and (allow-listed) sorting at fleet scale."""

from __future__ import annotations

import math
from typing import Any

from dash import Dash, Input, Output, State, dash_table, dcc, html

from dashboard.auth import require
from dashboard.context import DashboardContext
from dashboard.i18n import Language, format_time, t
from dashboard.ui import loading
from devices import reporting as devices_reporting

PAGE_SIZE = 25
COLUMNS = ("uid", "serial", "model_id", "nickname", "firmware", "status", "last_seen")
SORTABLE = frozenset(devices_reporting.SORTABLE_COLUMNS)


def layout(lang: str, _params: dict[str, str]) -> html.Div:
    """Filters above a table whose pages come from the server."""
    columns = [
        {
            "name": t(f"col.{c}", lang),
            "id": c,
            "presentation": "markdown" if c == "uid" else "input",
        }
        for c in COLUMNS
    ]
    return html.Div(
        [
            html.Div(
                [
                    html.H2(t("devices.title", lang)),
                    html.Span(id="devices-total", className="muted"),
                ],
                className="page-head",
            ),
            html.Div(
                [
                    dcc.Input(
                        id="devices-search",
                        type="search",
                        debounce=True,
                        maxLength=64,
                        placeholder=t("devices.search", lang),
                        className="input",
                    ),
                    dcc.Dropdown(
                        id="devices-model",
                        placeholder=t("devices.model", lang),
                        options=[],
                        className="filter",
                    ),
                    dcc.Dropdown(
                        id="devices-status",
                        placeholder=t("devices.status", lang),
                        options=[
                            {"label": t("common.online", lang), "value": "online"},
                            {"label": t("common.offline", lang), "value": "offline"},
                        ],
                        className="filter",
                    ),
                ],
                className="filters",
            ),
            loading(
                dash_table.DataTable(  # type: ignore[attr-defined]
                    id="devices-table",
                    columns=columns,
                    data=[],
                    page_current=0,
                    page_size=PAGE_SIZE,
                    page_action="custom",
                    sort_action="custom",
                    sort_mode="single",
                    sort_by=[],
                    markdown_options={"link_target": "_self"},
                    style_as_list_view=True,
                    style_header={"fontWeight": "600", "backgroundColor": "#f4f6fb"},
                    style_cell={
                        "fontFamily": "inherit",
                        "padding": "6px 10px",
                        "textAlign": "left",
                    },
                )
            ),
        ],
        className="page-body",
    )


def query_from_inputs(
    page: int | None,
    sort_by: list[dict[str, str]] | None,
    search: str | None,
    model_id: str | None,
    status: str | None,
    online_window_s: float,
) -> devices_reporting.DeviceQuery:
    """A validated query from whatever the table sent: unknown sort columns fall back to uid."""
    column, descending = "uid", False
    if sort_by:
        wanted = sort_by[0].get("column_id")
        if wanted in SORTABLE:
            column, descending = str(wanted), sort_by[0].get("direction") == "desc"
    return devices_reporting.DeviceQuery(
        search=(search or "")[:64] or None,
        model_id=model_id or None,
        status=status if status in ("online", "offline") else None,  # type: ignore[arg-type]
        sort_by=column,
        descending=descending,
        page=max(0, min(int(page or 0), 1_000_000)),
        page_size=PAGE_SIZE,
        online_window_s=online_window_s,
    )


def register(app: Dash, ctx: DashboardContext) -> None:
    """Each page, sort or filter change asks the database for exactly one page."""

    @app.callback(
        Output("devices-model", "options"), Input("devices-model", "id"), State("lang", "value")
    )
    def model_options(_id: str, lang: str | None) -> list[dict[str, str]]:
        require("operator")
        key: Language = "ja" if lang == "ja" else "en"
        return [{"label": m.names[key], "value": m.id} for m in ctx.models.values()]

    @app.callback(
        Output("devices-table", "data"),
        Output("devices-table", "page_count"),
        Output("devices-table", "page_current"),
        Output("devices-total", "children"),
        Input("devices-table", "page_current"),
        Input("devices-table", "sort_by"),
        Input("devices-search", "value"),
        Input("devices-model", "value"),
        Input("devices-status", "value"),
        Input("viewer-tz", "data"),
        State("lang", "value"),
    )
    def page(
        page_current: int | None,
        sort_by: list[dict[str, str]] | None,
        search: str | None,
        model_id: str | None,
        status: str | None,
        tz: str | None,
        lang: str | None,
    ) -> tuple[list[dict[str, Any]], int, int, str]:
        require("operator")
        query = query_from_inputs(
            page_current, sort_by, search, model_id, status, ctx.online_window_s
        )
        with ctx.connection() as conn:
            result = devices_reporting.device_page(conn, query)
        rows = [_row(r, tz, lang) for r in result.rows]
        pages = max(1, math.ceil(result.total / PAGE_SIZE))
        return rows, pages, result.page, f"{result.total:,} {t('devices.total', lang)}"


def _row(r: devices_reporting.DeviceRow, tz: str | None, lang: str | None) -> dict[str, Any]:
    return {
        "uid": f"[{r.uid}](/devices/{r.uid})",
        "serial": r.serial,
        "model_id": r.model_id,
        "nickname": r.nickname or "",
        "firmware": r.firmware or "",
        "status": t("common.online" if r.online else "common.offline", lang),
        "last_seen": format_time(r.last_seen, tz),
    }
