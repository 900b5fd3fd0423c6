"""Dashboard fixtures: a seeded fleet and the real dashboard served over HTTP on a free port."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from app.embedded import free_port
from app.settings import Settings
from dashboard.api_auth import ApiAuthenticator
from dashboard.app import create_dash_app
from store.db import open_pool
from tests.dashboard.seed import PASSWORD, Fleet, SeedUser, seed_fleet


@dataclass
class DashboardServer:
    """A running dashboard: its base URL and the app behind it."""

    url: str
    app: Any

    def client(self) -> httpx.Client:
        """An HTTP client with its own cookie jar (one browser)."""
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)

    def login(self, user: SeedUser) -> httpx.Client:
        """A client signed in as `user` with password and a fresh one-time code."""
        client = self.client()
        response = client.post(
            "/auth/login",
            data={"email": user.email, "password": PASSWORD, "otp": user.code(), "next": "/"},
        )
        assert response.status_code == 303 and "error" not in response.headers["location"]
        return client


@pytest.fixture
def fleet(db: Any, settings: Settings) -> Fleet:
    """The seeded fleet."""
    return seed_fleet(db, settings)


@pytest.fixture
def dashboard(settings: Settings, fleet: Fleet) -> Iterator[DashboardServer]:
    """The dashboard on a free port, against this test's database, signing in through the API."""
    assert settings.database_url is not None
    pool = open_pool(settings.database_url, settings.store, "dashboard-test")
    authenticator = ApiAuthenticator(settings)
    app = create_dash_app(settings, pool=pool, authenticator=authenticator)
    server = make_server("127.0.0.1", free_port(), app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield DashboardServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        authenticator.close()
        pool.close()


def callback(
    client: httpx.Client,
    app: Any,
    output: str,
    inputs: list[dict[str, Any]],
    state: list[dict[str, Any]] | None = None,
) -> httpx.Response:
    """POST one Dash callback exactly as a browser would (any inputs a client chooses)."""
    spec = app.callback_map[output]
    outputs = [
        {"id": o.split(".")[0], "property": o.split(".")[1]}
        for o in re.sub(r"^\.\.|\.\.$", "", output).split("...")
    ]
    body = {
        "output": output,
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": inputs,
        "state": state or [],
        "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs[:1]],
    }
    assert spec is not None
    return client.post("/_dash-update-component", json=body)
