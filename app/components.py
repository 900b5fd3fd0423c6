"""The long-running components of Kizuna and how `kizuna serve <component>` finds them.

Each component module exposes `run(settings, stop)`: it builds what it needs from settings,
works until `stop` is set, then closes everything in reverse order.
"""

from __future__ import annotations

import importlib
import signal
import threading
from collections.abc import Callable
from typing import Protocol

from app.settings import Settings

COMPONENTS: dict[str, str] = {
    "ingest": "ingest.main",
    "api": "api.main",
    "dashboard": "dashboard.main",
    "notify": "notify.main",
    "scheduler": "rules.main",
}


class ComponentRunner(Protocol):
    """The entry point every component module provides."""

    def __call__(self, settings: Settings, stop: threading.Event) -> None: ...


def load_component(name: str) -> ComponentRunner:
    """The `run` function of a component, by name."""
    if name not in COMPONENTS:
        raise KeyError(f"unknown component {name!r}; choose from {', '.join(COMPONENTS)}")
    module = importlib.import_module(COMPONENTS[name])
    runner: ComponentRunner = module.run
    return runner


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for a clean shutdown."""
    stop = threading.Event()
    handler: Callable[[int, object], None] = lambda *_: stop.set()  # noqa: E731
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
