"""`kizuna serve dashboard`: the Dash app on a threaded WSGI server until told to stop."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog
from werkzeug.serving import make_server

from app.settings import Settings
from dashboard.app import create_dash_app
from dashboard.auth import Authenticator

if TYPE_CHECKING:
    from dashboard.api_auth import ApiAuthenticator
from store.db import open_pool

log = structlog.get_logger(__name__)


def run(
    settings: Settings, stop: threading.Event, *, authenticator: Authenticator | None = None
) -> None:
    """Serve the dashboard on settings.dashboard.host:port until `stop` is set."""
    if settings.database_url is None:
        raise ValueError("the dashboard needs settings.database_url (see app.services)")
    pool = open_pool(settings.database_url, settings.store, "dashboard")
    owned_auth = None
    if authenticator is None:  # the API's accounts; closed here because opened here
        owned_auth = authenticator = _default_auth(settings)
    try:
        app = create_dash_app(settings, pool=pool, authenticator=authenticator)
        server = make_server(
            settings.dashboard.host, settings.dashboard.port, app.server, threaded=True
        )
        thread = threading.Thread(target=server.serve_forever, name="dashboard-http", daemon=True)
        thread.start()
        log.info("dashboard.listening", host=settings.dashboard.host, port=server.server_port)
        stop.wait()
        server.shutdown()
        thread.join(timeout=10)
    finally:
        if owned_auth is not None:
            owned_auth.close()
        pool.close()


def _default_auth(settings: Settings) -> ApiAuthenticator:
    from dashboard.api_auth import ApiAuthenticator

    return ApiAuthenticator(settings)
