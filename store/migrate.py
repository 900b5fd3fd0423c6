"""Versioned SQL migrations: each package owns `<package>/migrations/NNNN_name[.variant].sql`.

Migrations run in order of (number, package order, name), each in its own transaction,
and are recorded in `schema_migrations` with a checksum, so running again is a no-op and an
edited migration is refused. A migration may come in two variants, `.timescale.sql` and
`.postgres.sql`: the TimescaleDB one is used when the extension is available.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import structlog
from psycopg import Connection
from psycopg.rows import DictRow

from store.capabilities import DatabaseCapabilities, detect_capabilities
from store.db import connect

log = structlog.get_logger(__name__)

# Packages that own tables, in dependency order (a later one may reference an earlier one).
MIGRATION_PACKAGES = ("store", "devices", "ingest", "rules", "notify", "api")
FILE_PATTERN = re.compile(
    r"^(?P<number>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<variant>timescale|postgres))?\.sql$"
)
ADVISORY_LOCK_KEY = 0x6B697A756E61  # "kizuna"


class MigrationError(RuntimeError):
    """A migration could not be found, read or applied."""


@dataclass(frozen=True)
class Migration:
    """One logical migration, possibly with storage variants."""

    package: str
    number: int
    name: str
    variants: dict[str, Path]

    @property
    def id(self) -> str:
        """Stable identifier recorded in schema_migrations."""
        return f"{self.package}/{self.number:04d}_{self.name}"

    def sort_key(self) -> tuple[int, int, str]:
        """Global order: number first, then package dependency order."""
        return (self.number, MIGRATION_PACKAGES.index(self.package), self.name)

    def pick(self, capabilities: DatabaseCapabilities) -> tuple[str, str]:
        """The variant name and SQL text to run on a database with these capabilities."""
        for variant in (capabilities.storage_variant, "any"):
            if variant in self.variants:
                return variant, self.variants[variant].read_text(encoding="utf-8")
        raise MigrationError(f"{self.id} has no variant for {capabilities.storage_variant}")


def discover_migrations() -> list[Migration]:
    """All migrations shipped with Kizuna, in the order they must run."""
    found: dict[tuple[str, int, str], dict[str, Path]] = {}
    for package in MIGRATION_PACKAGES:
        folder = Path(str(resources.files(package))) / "migrations"
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.sql")):
            match = FILE_PATTERN.match(path.name)
            if not match:
                raise MigrationError(f"migration file name not understood: {path}")
            key = (package, int(match["number"]), match["name"])
            found.setdefault(key, {})[match["variant"] or "any"] = path
    migrations = [Migration(p, n, name, v) for (p, n, name), v in found.items()]
    return sorted(migrations, key=Migration.sort_key)


def _checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def _ensure_ledger(conn: Connection[DictRow]) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            id text PRIMARY KEY,
            variant text NOT NULL,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def upgrade(url: str) -> list[str]:
    """Apply every pending migration to the database at `url`; return the ids applied."""
    applied_now: list[str] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        try:
            capabilities = detect_capabilities(conn)
            if capabilities.timescaledb_available and not capabilities.timescaledb_installed:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            log.info(
                "migrations.storage",
                variant=capabilities.storage_variant,
                server_version=capabilities.server_version,
            )
            _ensure_ledger(conn)
            rows = conn.execute("SELECT id, checksum FROM schema_migrations").fetchall()
            done = {row["id"]: row["checksum"] for row in rows}
            for migration in discover_migrations():
                variant, sql = migration.pick(capabilities)
                checksum = _checksum(sql)
                if migration.id in done:
                    if done[migration.id] != checksum:
                        raise MigrationError(
                            f"{migration.id} was changed after it was applied; "
                            "add a new migration instead of editing an applied one"
                        )
                    continue
                with conn.transaction():
                    conn.execute(sql.encode("utf-8"))
                    conn.execute(
                        "INSERT INTO schema_migrations (id, variant, checksum) VALUES (%s, %s, %s)",
                        (migration.id, variant, checksum),
                    )
                log.info("migrations.applied", id=migration.id, variant=variant)
                applied_now.append(migration.id)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    return applied_now
