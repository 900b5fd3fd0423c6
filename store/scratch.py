"""Throwaway databases for benchmarks: created on the server, migrated, always dropped."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

from store.config import StoreConfig
from store.db import connect, url_with_database
from store.migrate import upgrade

# CREATE/DROP DATABASE wait for checkpoints: no statement timeout for them.
ADMIN_CONFIG = StoreConfig(statement_timeout_ms=0)


@contextlib.contextmanager
def scratch_database(admin_url: str, label: str, *, migrate: bool = True) -> Iterator[str]:
    """A new database named after `label`, migrated unless asked not to; dropped on exit."""
    name = f"kizuna_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    with connect(admin_url, ADMIN_CONFIG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = url_with_database(admin_url, name)
        if migrate:
            upgrade(url)
        yield url
    finally:
        with connect(admin_url, ADMIN_CONFIG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
