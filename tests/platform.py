"""Run Kizuna components in threads for a test, as `kizuna serve` would run them."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from app.components import ComponentRunner
from app.settings import Settings
from devices.catalog_sync import sync_product_models
from ingest import health
from ingest.main import run as run_ingest
from rules.service import install_builtin_packs
from store.db import connect

READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


@contextlib.contextmanager
def running_components(settings: Settings, *runners: ComponentRunner) -> Iterator[Settings]:
    """Product models and rule packs loaded, then the components running until exit.

    When ingest is one of them, this waits until it has subscribed, so devices that publish
    right away are not published to a broker with no subscriber yet.
    """
    assert settings.database_url is not None
    with connect(settings.database_url, autocommit=True) as conn:
        sync_product_models(conn)
        install_builtin_packs(conn)
    stop = threading.Event()
    threads = [threading.Thread(target=run, args=(settings, stop), daemon=True) for run in runners]
    for thread in threads:
        thread.start()
    try:
        if run_ingest in runners:
            _wait_for_ingest()
        yield settings
    finally:
        stop.set()
        for thread in threads:
            thread.join(STOP_TIMEOUT_S)


def _wait_for_ingest() -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        state = health.current()
        if state is not None and state.ok:
            return
        time.sleep(0.05)
    raise AssertionError(f"ingest did not subscribe within {READY_TIMEOUT_S:.0f}s")
