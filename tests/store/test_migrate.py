"""Migrations: ordered, recorded, idempotent, and refusing edited history."""

from pathlib import Path

import pytest

from store.db import connect
from store.migrate import MigrationError, discover_migrations, upgrade


def test_upgrade_is_recorded_and_idempotent(database_url: str) -> None:
    with connect(database_url) as conn:
        recorded = {r["id"] for r in conn.execute("SELECT id FROM schema_migrations")}
    assert recorded == {m.id for m in discover_migrations()}
    assert upgrade(database_url) == []


def test_order_puts_referenced_tables_first() -> None:
    ids = [m.id for m in discover_migrations()]
    assert ids.index("devices/0001_registry") < ids.index("rules/0001_moments")


def test_edited_migration_is_refused(database_url: str) -> None:
    with connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE id = 'devices/0001_registry'"
        )
    with pytest.raises(MigrationError, match="changed after it was applied"):
        upgrade(database_url)


def test_storage_variant_is_recorded(database_url: str) -> None:
    with connect(database_url) as conn:
        variants = {r["variant"] for r in conn.execute("SELECT variant FROM schema_migrations")}
    assert variants <= {"any", "postgres", "timescale"}


def test_bad_file_name_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import store.migrate as migrate

    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "1_oops.sql").write_text("SELECT 1")
    monkeypatch.setattr(migrate.resources, "files", lambda _pkg: tmp_path)
    with pytest.raises(MigrationError, match="not understood"):
        discover_migrations()
