"""The api component: `kizuna serve api` serves until stopped; /metrics can require a token."""

from __future__ import annotations

import threading
import time

import httpx
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.config import ApiConfig
from api.main import run
from app.embedded import free_port
from app.settings import Settings
from tests.api.conftest import FAST_API_CONFIG


def test_run_serves_until_stop_is_set(api_settings: Settings) -> None:
    port = free_port()
    settings = api_settings.model_copy(update={"api": ApiConfig(**FAST_API_CONFIG, port=port)})
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(settings, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.1)
        assert response.status_code == 200
        assert "server" not in response.headers
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()


def test_metrics_token_is_required_when_configured(api_settings: Settings) -> None:
    settings = api_settings.model_copy(
        update={"api": ApiConfig(**FAST_API_CONFIG, metrics_token=SecretStr("scrape-me-please"))}
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
        assert ok.status_code == 200
