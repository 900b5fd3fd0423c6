"""`kizuna serve dashboard`: the component serves HTTP until its stop event is set."""

from __future__ import annotations

import threading

import httpx
from argon2 import PasswordHasher

from app.components import load_component
from app.embedded import free_port, wait_for_port
from app.settings import Settings
from dashboard.accounts import LocalAccounts
from dashboard.config import DashboardConfig
from dashboard.main import run

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_component_serves_the_login_page_and_stops(settings: Settings) -> None:
    assert load_component("dashboard") is run
    port = free_port()
    configured = settings.model_copy(update={"dashboard": DashboardConfig(port=port)})
    stop = threading.Event()
    worker = threading.Thread(
        target=run, args=(configured, stop), kwargs={"authenticator": LocalAccounts(hasher=CHEAP)}
    )
    worker.start()
    try:
        wait_for_port("127.0.0.1", port, 20)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "Kizuna" in page.text
        layout = httpx.get(f"http://127.0.0.1:{port}/_dash-layout", timeout=10)
        assert '"id": "tick"' in layout.text or '"id":"tick"' in layout.text
    finally:
        stop.set()
        worker.join(timeout=20)
    assert not worker.is_alive()
