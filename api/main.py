"""The API component: serve create_app(settings) with uvicorn until `stop` is set."""

from __future__ import annotations

import asyncio
import threading

import structlog
import uvicorn

from api.app import create_app
from app.services import running_services
from app.settings import Settings

log = structlog.get_logger(__name__)


def run(settings: Settings, stop: threading.Event) -> None:
    """Serve the API on settings.api.host:port; return after `stop` is set."""
    with running_services(settings) as live:
        app = create_app(live)
        config = uvicorn.Config(
            app,
            host=live.api.host,
            port=live.api.port,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
        )
        server = uvicorn.Server(config)

        def stop_when_asked() -> None:
            stop.wait()
            server.should_exit = True

        threading.Thread(target=stop_when_asked, name="api-stop", daemon=True).start()
        log.info("api.serving", host=live.api.host, port=live.api.port)
        asyncio.run(server.serve())
