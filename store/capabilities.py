"""What the connected database can do: server version and TimescaleDB availability."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from psycopg.rows import DictRow


@dataclass(frozen=True)
class DatabaseCapabilities:
    """Features the schema and queries adapt to."""

    server_version: int
    timescaledb_available: bool
    timescaledb_installed: bool

    @property
    def storage_variant(self) -> str:
        """Which migration variant fits: 'timescale' or 'postgres'."""
        return "timescale" if self.timescaledb_available else "postgres"


def detect_capabilities(conn: Connection[DictRow]) -> DatabaseCapabilities:
    """Ask the server for its version and whether the timescaledb extension can be used."""
    version: Any = conn.execute("SELECT current_setting('server_version_num') AS v").fetchone()
    available = conn.execute(
        "SELECT installed_version IS NOT NULL AS installed FROM pg_available_extensions "
        "WHERE name = 'timescaledb'"
    ).fetchone()
    return DatabaseCapabilities(
        server_version=int(version["v"]),
        timescaledb_available=available is not None,
        timescaledb_installed=bool(available and available["installed"]),
    )
