"""Connections and pools to PostgreSQL (psycopg 3)."""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from store.config import StoreConfig

APPLICATION_NAME = "kizuna"


def connection_kwargs(
    config: StoreConfig, application_name: str = APPLICATION_NAME
) -> dict[str, Any]:
    """Keyword arguments shared by every connection Kizuna opens."""
    return {
        "connect_timeout": int(config.connect_timeout_s),
        "application_name": application_name,
        "options": f"-c statement_timeout={config.statement_timeout_ms} -c timezone=UTC",
        "keepalives": 1,
        "keepalives_idle": config.tcp_keepalive_idle_s,
        "keepalives_interval": config.tcp_keepalive_interval_s,
        "keepalives_count": config.tcp_keepalive_count,
        "tcp_user_timeout": config.tcp_user_timeout_ms,
    }


def connect(
    url: str, config: StoreConfig | None = None, *, autocommit: bool = False
) -> Connection[DictRow]:
    """One connection (dict rows), for scripts, migrations and tests."""
    kwargs = connection_kwargs(config or StoreConfig())
    return Connection.connect(url, autocommit=autocommit, row_factory=dict_row, **kwargs)


def open_pool(url: str, config: StoreConfig, name: str) -> ConnectionPool[Connection[DictRow]]:
    """A synchronous pool that fails at start when the database is unreachable."""
    pool: ConnectionPool[Connection[DictRow]] = ConnectionPool(
        url,
        min_size=config.pool_min_size,
        max_size=config.pool_max_size,
        kwargs={"row_factory": dict_row, **connection_kwargs(config, f"kizuna-{name}")},
        name=name,
        open=False,
    )
    pool.open(wait=True, timeout=config.connect_timeout_s * 2)
    return pool


async def open_async_pool(url: str, config: StoreConfig, name: str) -> AsyncConnectionPool:
    """An asyncio pool (FastAPI lifespan) that fails at start when the database is unreachable."""
    pool = AsyncConnectionPool(
        url,
        min_size=config.pool_min_size,
        max_size=config.pool_max_size,
        kwargs={"row_factory": dict_row, **connection_kwargs(config, f"kizuna-{name}")},
        name=name,
        open=False,
    )
    await pool.open(wait=True, timeout=config.connect_timeout_s * 2)
    return pool


def url_with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def database_name(url: str) -> str:
    """The database a URL points at (also for socket URLs like postgresql://@/db?host=/tmp)."""
    from urllib.parse import urlsplit

    return urlsplit(url).path.lstrip("/")
