"""Shared fixtures: a real PostgreSQL and a real MQTT broker for every test.

`KIZUNA_TEST_DATABASE_URL` / `KIZUNA_TEST_MQTT_URL` point the suite at running services (CI
uses the machine's PostgreSQL 15 and Mosquitto); unset, embedded ones start on free ports.
Each test that asks for `database_url` gets its own database, cloned from a migrated
template, so tests never see each other's rows and may run in parallel.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from app.embedded import embedded_broker, embedded_postgres
from app.settings import Settings
from ingest.config import IngestConfig
from store.config import StoreConfig
from store.db import connect, database_name, url_with_database
from store.migrate import upgrade

TEST_DATABASE_ENV = "KIZUNA_TEST_DATABASE_URL"
TEST_MQTT_ENV = "KIZUNA_TEST_MQTT_URL"
DATABASE_PREFIX = "kzt"
# Creating and dropping databases waits for checkpoints: no statement timeout for those.
ADMIN_CONFIG = StoreConfig(statement_timeout_ms=0)


def _database_name(kind: str) -> str:
    return f"{DATABASE_PREFIX}_{kind}_{os.getpid()}_{secrets.token_hex(4)}"


def _drop_stale_databases(admin_url: str) -> None:
    """Drop test databases left by runs whose process is gone (killed runs)."""
    with connect(admin_url, ADMIN_CONFIG, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{DATABASE_PREFIX}\\_%",)
        ).fetchall()
        for row in rows:
            parts = row["datname"].split("_")
            if len(parts) >= 4 and parts[2].isdigit() and not psutil.pid_exists(int(parts[2])):
                conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL to a database on the test server with rights to create databases."""
    url = os.environ.get(TEST_DATABASE_ENV)
    if url:
        _drop_stale_databases(url)
        yield url
        return
    with embedded_postgres(tmp_path_factory.mktemp("embedded-pg")) as embedded_url:
        # Throwaway test data: skip fsync, or every CREATE/DROP DATABASE waits on the disk.
        with connect(embedded_url, ADMIN_CONFIG, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = off")
            conn.execute("ALTER SYSTEM SET full_page_writes = off")
            conn.execute("SELECT pg_reload_conf()")
        yield embedded_url


@pytest.fixture(scope="session")
def template_database(postgres_admin_url: str) -> Iterator[str]:
    """A database with every migration applied, cloned by `database_url`."""
    name = _database_name("template")
    with connect(postgres_admin_url, ADMIN_CONFIG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(url_with_database(postgres_admin_url, name))
        yield name
    finally:
        with connect(postgres_admin_url, ADMIN_CONFIG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_database_from_template(admin_url: str, template: str) -> str:
    """Clone the template into a new database; return its URL."""
    name = _database_name("db")
    with connect(admin_url, ADMIN_CONFIG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return url_with_database(admin_url, name)


def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by `create_database_from_template`, closing its connections."""
    name = database_name(url)  # not rsplit("/"): socket URLs carry a path in ?host=
    with connect(admin_url, ADMIN_CONFIG, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    url = create_database_from_template(postgres_admin_url, template_database)
    try:
        yield url
    finally:
        drop_database(postgres_admin_url, url)


@dataclass(frozen=True)
class TestBroker:
    """The broker the suite talks to, and whether it speaks MQTT 5."""

    __test__ = False
    url: str
    supports_mqtt5: bool


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBroker]:
    """A real MQTT broker: KIZUNA_TEST_MQTT_URL (an MQTT 5 broker) or an embedded one."""
    url = os.environ.get(TEST_MQTT_ENV)
    if url:
        yield TestBroker(url, supports_mqtt5=True)
        return
    choice = os.environ.get("KIZUNA_EMBEDDED_BROKER", "auto")
    if choice not in ("auto", "mosquitto", "rumqttd"):
        raise ValueError(f"KIZUNA_EMBEDDED_BROKER={choice!r}: use auto, mosquitto or rumqttd")
    folder = tmp_path_factory.mktemp("embedded-broker")
    with embedded_broker(folder, choice=choice) as broker:  # type: ignore[arg-type]
        yield TestBroker(broker.url, broker.supports_mqtt5)


@pytest.fixture(scope="session")
def mqtt_url(mqtt_broker: TestBroker) -> str:
    """A URL to a real MQTT broker."""
    return mqtt_broker.url


@pytest.fixture
def requires_mqtt5(mqtt_broker: TestBroker) -> None:
    """Skip a test that needs MQTT 5 features when the embedded broker speaks 3.1.1 only."""
    if not mqtt_broker.supports_mqtt5:
        pytest.skip("needs an MQTT 5 broker (install mosquitto, or set KIZUNA_TEST_MQTT_URL)")


@pytest.fixture(autouse=True)
def _mqtt5_marker(request: pytest.FixtureRequest) -> None:
    """Tests marked `mqtt5` (their device-side helpers speak MQTT 5) skip on rumqttd."""
    if request.node.get_closest_marker("mqtt5") is not None:
        request.getfixturevalue("requires_mqtt5")


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix of this test's own, so tests sharing a broker never cross."""
    return f"kzt{secrets.token_hex(4)}"


def make_test_settings(
    database_url: str, mqtt_url: str, topic_prefix: str, data_dir: Path, **overrides: object
) -> Settings:
    """Settings for a test: real services, random secrets, no `.env` file."""
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "mqtt_url": mqtt_url,
        "mqtt_topic_prefix": topic_prefix,
        "data_dir": data_dir,
        "secret_key": secrets.token_urlsafe(48),
        "data_encryption_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        "ingest": IngestConfig(client_id=f"ingest-{topic_prefix}"),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


@pytest.fixture
def settings(
    database_url: str, mqtt_broker: TestBroker, topic_prefix: str, tmp_path: Path
) -> Settings:
    """Settings wired to this test's database, the broker and this test's topic prefix."""
    protocol = "5" if mqtt_broker.supports_mqtt5 else "3.1.1"
    return make_test_settings(
        database_url,
        mqtt_broker.url,
        topic_prefix,
        tmp_path,
        ingest=IngestConfig(client_id=f"ingest-{topic_prefix}", mqtt_protocol=protocol),
    )


@pytest.fixture
def db(database_url: str) -> Iterator[object]:
    """An autocommit connection (dict rows) to this test's database."""
    with contextlib.closing(connect(database_url, autocommit=True)) as conn:
        yield conn
