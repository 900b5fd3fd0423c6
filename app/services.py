"""Resolve the database and broker a process uses: external when configured, else embedded."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from app.embedded import embedded_broker, embedded_postgres
from app.settings import Settings
from store.migrate import upgrade


@contextlib.contextmanager
def running_services(settings: Settings, *, migrate: bool = True) -> Iterator[Settings]:
    """Start whatever is embedded, migrate the database, and yield settings with real URLs."""
    with contextlib.ExitStack() as stack:
        database_url = settings.database_url or stack.enter_context(
            embedded_postgres(settings.data_dir)
        )
        mqtt_url = settings.mqtt_url or stack.enter_context(embedded_broker(settings.data_dir))
        if migrate:
            upgrade(database_url)
        yield settings.model_copy(update={"database_url": database_url, "mqtt_url": mqtt_url})
