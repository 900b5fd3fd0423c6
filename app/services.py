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
        update: dict[str, object] = {"database_url": database_url}
        if settings.mqtt_url is None:
            broker = stack.enter_context(
                embedded_broker(settings.data_dir, choice=settings.embedded_broker)
            )
            update["mqtt_url"] = broker.url
            if not broker.supports_mqtt5:
                update["ingest"] = settings.ingest.model_copy(update={"mqtt_protocol": "3.1.1"})
        if migrate:
            upgrade(database_url)
        yield settings.model_copy(update=update)
