"""The Dash app: one shell (header, language, viewer time zone, refresh tick) and a page router."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import flask
from dash import Dash, Input, Output, State, dcc, html
from psycopg import Connection
from psycopg.rows import DictRow
from psycopg_pool import ConnectionPool

from app.settings import Settings
from dashboard import routes
from dashboard.auth import Authenticator, current_principal, flask_secret, register_routes
from dashboard.context import DashboardContext
from dashboard.i18n import LANGUAGES, t


def create_dash_app(
    settings: Settings,
    *,
    pool: ConnectionPool[Connection[DictRow]],
    authenticator: Authenticator,
) -> Dash:
    """A dashboard app reading through `pool` and signing people in with `authenticator`."""
    server = flask.Flask("kizuna-dashboard")
    server.secret_key = flask_secret(settings.secret_key.get_secret_value())
    server.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="kizuna_dashboard",
        SESSION_COOKIE_SECURE=settings.env == "production",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
    )
    register_routes(server, authenticator, settings.api.trusted_proxies)
    app = Dash(
        "kizuna-dashboard",
        server=server,  # type: ignore[arg-type]
        title="Kizuna",
        suppress_callback_exceptions=True,
        update_title=None,  # type: ignore[arg-type]
        serve_locally=True,
        assets_folder=str(_assets_folder()),
    )
    ctx = DashboardContext(settings=settings, pool=pool)
    app.layout = _shell(settings)
    _register_shell_callbacks(app)
    routes.register_pages(app, ctx)
    return app


def _assets_folder() -> Any:
    from importlib import resources

    return resources.files("dashboard") / "assets"


def _shell(settings: Settings) -> html.Div:
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Store(id="viewer-tz"),
            dcc.Interval(id="tick", interval=settings.dashboard.refresh_interval_ms),
            html.Header(
                [
                    html.A(
                        [html.Span(className="brand-mark"), "Kizuna"], href="/", className="brand"
                    ),
                    html.Nav(id="nav", className="nav"),
                    dcc.Dropdown(
                        id="lang",
                        options=[
                            {"label": "English", "value": "en"},
                            {"label": "日本語", "value": "ja"},
                        ],
                        value="en",
                        clearable=False,
                        searchable=False,
                        persistence=True,
                        persistence_type="local",
                        className="lang-select",
                    ),
                    html.Div(id="account", className="account"),
                ],
                className="header",
            ),
            html.Main(id="page", className="page"),
        ],
        className="shell",
    )


def _register_shell_callbacks(app: Dash) -> None:
    # The browser knows the viewer's time zone; the server formats times with it.
    app.clientside_callback(
        "function(_) { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; }",
        Output("viewer-tz", "data"),
        Input("url", "pathname"),
    )

    @app.callback(
        Output("page", "children"),
        Output("nav", "children"),
        Output("account", "children"),
        Input("url", "pathname"),
        Input("lang", "value"),
        State("url", "search"),
    )
    def route(pathname: str | None, lang: str | None, search: str | None) -> tuple[Any, ...]:
        lang = lang if lang in LANGUAGES else "en"
        principal = current_principal()
        page = routes.render(principal, pathname or "/", search or "", lang)
        return page, routes.nav(principal, pathname or "/", lang), _account(principal, lang)


def _account(principal: Any, lang: str) -> Any:
    if principal is None:
        return None
    return html.Form(
        [
            html.Span(principal.display_name, className="who"),
            html.Button(t("nav.logout", lang), type="submit", id="logout", className="btn-link"),
        ],
        method="POST",
        action="/auth/logout",
    )
