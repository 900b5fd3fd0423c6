"""Dashboard fixtures: a seeded fleet and the real dashboard served over HTTP on a free port."""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from api.config import ApiConfig
from app.embedded import free_port
from app.settings import Settings
from dashboard.api_auth import ApiAuthenticator
from dashboard.app import create_dash_app
from dashboard.auth import SESSION_KEY
from dashboard.config import DashboardConfig
from store.db import connect, open_pool
from tests.conftest import create_database_from_template, drop_database, make_test_settings
from tests.dashboard.seed import PASSWORD, Fleet, SeedUser, issue_session_token, seed_fleet


@dataclass
class DashboardServer:
    """A running dashboard: its base URL and the app behind it."""

    url: str
    app: Any
    settings: Settings

    def client(self) -> httpx.Client:
        """An HTTP client with its own cookie jar (one browser)."""
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)

    def login(self, user: SeedUser) -> httpx.Client:
        """A client signed in as `user` with password and one-time code (once per TOTP step)."""
        client = self.client()
        response = client.post(
            "/auth/login",
            data={"email": user.email, "password": PASSWORD, "otp": user.code(), "next": "/"},
        )
        assert response.status_code == 303 and "error" not in response.headers["location"]
        return client

    def signed_in(self, user: SeedUser) -> httpx.Client:
        """A client holding the session cookie a login would set (codes are single-use)."""
        token = issue_session_token(self.settings, user)
        serializer = self.app.server.session_interface.get_signing_serializer(self.app.server)
        client = self.client()
        client.cookies.set("kizuna_dashboard", serializer.dumps({SESSION_KEY: token}))
        return client


@pytest.fixture(scope="module")
def dash_settings(
    postgres_admin_url: str,
    template_database: str,
    mqtt_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Settings]:
    """Settings on a database of this test module's own (seeding once per module is faster)."""
    url = create_database_from_template(postgres_admin_url, template_database)
    try:
        yield make_test_settings(
            url,
            mqtt_url,
            f"kzt{secrets.token_hex(4)}",
            tmp_path_factory.mktemp("dash"),
            # Cheap password hashing: the tests sign in often; the algorithm is the same.
            api=ApiConfig(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1),
            # Slow ticks: pages still refresh live, but browsers settle between refreshes.
            dashboard=DashboardConfig(refresh_interval_ms=15_000),
        )
    finally:
        drop_database(postgres_admin_url, url)


@pytest.fixture(scope="module")
def fleet(dash_settings: Settings) -> Fleet:
    """The seeded fleet."""
    assert dash_settings.database_url is not None
    with contextlib.closing(connect(dash_settings.database_url, autocommit=True)) as conn:
        return seed_fleet(conn, dash_settings)


@pytest.fixture(scope="module")
def dashboard(dash_settings: Settings, fleet: Fleet) -> Iterator[DashboardServer]:
    """The dashboard on a free port, against the module's database, signing in through the API."""
    settings = dash_settings
    assert settings.database_url is not None
    pool = open_pool(settings.database_url, settings.store, "dashboard-test")
    authenticator = ApiAuthenticator(settings)
    app = create_dash_app(settings, pool=pool, authenticator=authenticator)
    server = make_server("127.0.0.1", free_port(), app.server, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield DashboardServer(f"http://127.0.0.1:{server.server_port}", app, settings)
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
