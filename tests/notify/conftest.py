"""Fixtures for notify: people and devices in the database, a real SMTP server and webhook."""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from app.embedded import free_port
from app.settings import Settings
from notify.channels import Channel
from notify.channels.email import EmailChannel
from notify.channels.webhook import WebhookChannel
from notify.config import NotifyConfig
from notify.models import INTERRUPTING_CHANNELS, ChannelName
from notify.outbox import Outbox
from notify.repo import EMAIL_CONTEXT, NAME_CONTEXT
from store.db import connect
from store.encryption import FieldCipher
from tests.api.conftest import (  # noqa: F401  (the real app and users, for the route tests)
    api,
    api_settings,
    customer_a,
    customer_b,
    make_user,
    smtp,
)
from tests.conftest import create_database_from_template, drop_database


@pytest.fixture(scope="session")
def notify_database(postgres_admin_url: str, template_database: str) -> Iterator[str]:
    """One migrated database for the notify tests, emptied before each test (cheaper than a
    clone per test on a busy machine)."""
    url = create_database_from_template(postgres_admin_url, template_database)
    try:
        yield url
    finally:
        drop_database(postgres_admin_url, url)


@pytest.fixture
def database_url(notify_database: str) -> str:
    """The notify database with every table emptied and identities restarted."""
    with connect(notify_database, autocommit=True) as conn:
        tables = [
            row["relname"]
            for row in conn.execute(
                """SELECT c.relname FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                     AND NOT c.relispartition AND c.relname <> 'schema_migrations'
                     AND NOT EXISTS (SELECT 1 FROM pg_trigger t  -- append-only tables
                                     WHERE t.tgrelid = c.oid AND (t.tgtype & 32) <> 0)"""
            )
        ]
        names = ", ".join(f'"{name}"' for name in tables)
        conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    return notify_database


@pytest.fixture
def cipher(settings: Settings) -> FieldCipher:
    """The cipher for this test's random data key."""
    return FieldCipher.from_encoded(settings.data_encryption_key.get_secret_value())


@dataclass
class World:
    """Rows created for a test, by name."""

    db: Any
    cipher: FieldCipher
    customers: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)

    def customer(
        self,
        key: str,
        *,
        language: str = "en",
        time_zone: str = "Asia/Tokyo",
        name: str | None = None,
        email: str | None = None,
    ) -> int:
        """Create a customer with sealed personal data."""
        row = self.db.execute(
            """INSERT INTO customers (language, time_zone, name_enc, email_enc)
               VALUES (%s, %s, %s, %s) RETURNING id""",
            (
                language,
                time_zone,
                self.cipher.seal(name, NAME_CONTEXT) if name else None,
                self.cipher.seal(email, EMAIL_CONTEXT) if email else None,
            ),
        ).fetchone()
        self.customers[key] = row["id"]
        return int(row["id"])

    def device(self, uid: str, model_id: str, nickname: str | None, *people: str) -> int:
        """Create a device shared by people (the first one is the owner)."""
        self.db.execute(
            "INSERT INTO product_models (id, spec) VALUES (%s, '{}') ON CONFLICT DO NOTHING",
            (model_id,),
        )
        row = self.db.execute(
            "INSERT INTO devices (uid, serial, model_id, nickname) VALUES (%s, %s, %s, %s) "
            "RETURNING id",
            (uid, f"SN-{uid}", model_id, nickname),
        ).fetchone()
        for index, person in enumerate(people):
            self.db.execute(
                "INSERT INTO device_ownerships (device_id, customer_id, role) VALUES (%s, %s, %s)",
                (row["id"], self.customers[person], "owner" if index == 0 else "family"),
            )
        self.devices[uid] = row["id"]
        return int(row["id"])

    def moment(
        self,
        uid: str,
        kind: str,
        facts: dict[str, Any],
        severity: str = "info",
        dedup_key: str | None = None,
    ) -> int:
        """Insert a moment as rules/ would (the trigger queues it for notify)."""
        row = self.db.execute(
            """INSERT INTO moments (device_id, kind, severity, occurred_at, facts, dedup_key)
               VALUES (%s, %s, %s, now(), %s, %s) RETURNING id""",
            (
                self.devices[uid],
                kind,
                severity,
                json.dumps(facts),
                dedup_key or f"{uid}:{kind}:{datetime.now(UTC).timestamp()}",
            ),
        ).fetchone()
        return int(row["id"])

    def feed(self, person: str) -> list[dict[str, Any]]:
        """A person's feed posts, oldest first."""
        return self.db.execute(
            "SELECT * FROM feed_posts WHERE customer_id = %s ORDER BY id",
            (self.customers[person],),
        ).fetchall()

    def outbox(self, person: str, channel: str | None = None) -> list[dict[str, Any]]:
        """A person's outbox rows, oldest first."""
        return self.db.execute(
            """SELECT * FROM notifications WHERE customer_id = %s
                 AND (%s::text IS NULL OR channel = %s) ORDER BY id""",
            (self.customers[person], channel, channel),
        ).fetchall()


@pytest.fixture
def world(db: Any, cipher: FieldCipher) -> World:
    """An empty world over this test's database."""
    return World(db, cipher)


class FakeClock:
    """A clock the test moves by hand (the deliberate time seam)."""

    def __init__(self, now: datetime) -> None:
        self.value = now

    def __call__(self) -> datetime:
        return self.value


class RecordingChannel:
    """A channel that records what it was asked to deliver (the deliberate delivery seam)."""

    def __init__(self) -> None:
        self.delivered: list[Any] = []
        self.lock = threading.Lock()

    def deliver(self, message: Any) -> None:
        with self.lock:
            self.delivered.append(message)


def make_outbox(
    cipher: FieldCipher,
    channels: dict[ChannelName, Channel] | None = None,
    clock: Any = None,
    **config: Any,
) -> Outbox:
    """An Outbox with test-friendly retry timing."""
    values: dict[str, Any] = {"retry_base_s": 0.05, "retry_max_s": 0.2, "escalate_after_s": 60}
    values.update(config)
    if channels is None:  # every interrupting channel configured, recording what it gets
        channels = {name: RecordingChannel() for name in INTERRUPTING_CHANNELS}
    return Outbox(NotifyConfig(**values), cipher, channels, clock=clock)


# ---------------------------------------------------------------- real receivers


class SmtpSink(Message):
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Any] = []

    def handle_message(self, message: Any) -> None:
        # Re-read with the modern policy so headers come back decoded (RFC 2047).
        self.messages.append(email.message_from_bytes(message.as_bytes(), policy=policy.default))


@dataclass
class SmtpServer:
    """A real SMTP server on a free port that can be stopped and started again."""

    port: int
    sink: SmtpSink
    controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server (aiosmtpd)."""
    server = SmtpServer(free_port(), SmtpSink())
    server.start()
    yield server
    server.stop()


@dataclass(frozen=True)
class ReceivedCall:
    """One webhook call exactly as it arrived: headers and raw body bytes."""

    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class WebhookReceiver:
    """A real HTTP server recording webhook calls; it can answer errors or be down."""

    port: int
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    received: list[ReceivedCall] = field(default_factory=list)  # every call, answered or not
    status: int = 200
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def keys(self) -> list[str]:
        return [key for key, _ in self.calls]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                body = json.loads(raw)
                with receiver.lock:
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    receiver.received.append(ReceivedCall(headers, raw, receiver.status))
                    if receiver.status < 300:
                        receiver.calls.append((self.headers["Idempotency-Key"], body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A running webhook receiver."""
    receiver = WebhookReceiver(free_port())
    receiver.start()
    yield receiver
    receiver.stop()


def real_channels(server: SmtpServer) -> dict[ChannelName, Channel]:
    """Email and webhook channels pointed at the test's real servers."""
    return {
        ChannelName.EMAIL: EmailChannel(server.url, "friends@kizuna.test", timeout_s=2),
        ChannelName.WEBHOOK: WebhookChannel(2, allow_private=True),
    }
