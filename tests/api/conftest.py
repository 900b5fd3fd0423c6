"""API fixtures: the real app on the test database, an SMTP sink, and users of every role.

`api` is a TestClient running create_app(settings) (lifespan and pool included). Users come
from `make_user`, which goes through the accounts service, so rows are exactly what the
product creates. Customers A and B are rows in `customers`; A owns `device_a`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig
from api.mail import SmtpMailSender
from app.embedded import free_port
from app.settings import Settings
from devices.catalog_sync import sync_product_models
from tests.api.probe import router as probe_router
from tests.conftest import make_test_settings

# argon2id stays argon2id; only its cost is lowered so the suite stays fast.
FAST_API_CONFIG = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
PASSWORD = "correct horse battery staple"


class SmtpSink:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message."""
        message = message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def clear(self) -> None:
        """Forget every message received so far."""
        with self._lock:
            self.messages.clear()

    def to(self, address: str) -> list[Message]:
        """Messages whose envelope recipient is `address`."""
        with self._lock:
            return [m for m in self.messages if address in m["X-Envelope-To"].split(",")]


def body_text(message: Message) -> str:
    """The decoded text of a single-part message."""
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    """A real SMTP server on a free loopback port (one per test process)."""
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture
def api_settings(database_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path) -> Settings:
    """Test settings with a cheaper argon2id cost."""
    return make_test_settings(
        database_url, mqtt_url, topic_prefix, tmp_path, api=ApiConfig(**FAST_API_CONFIG)
    )


@pytest.fixture
def mail(smtp: tuple[SmtpSink, int]) -> SmtpSink:
    """The messages the API sent during this test."""
    smtp[0].clear()
    return smtp[0]


@pytest.fixture
def api(api_settings: Settings, smtp: tuple[SmtpSink, int]) -> Iterator[TestClient]:
    """The real app (lifespan, pool, mail over real SMTP) on this test's database."""
    sender = SmtpMailSender(f"smtp://127.0.0.1:{smtp[1]}", "kizuna@example.com")
    app = create_app(api_settings, mail_sender=sender)
    with TestClient(app, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def probe_api(api_settings: Settings, api: TestClient) -> Iterator[TestClient]:
    """The app plus tests/api/probe.py routes, sharing the database and users of `api`."""
    app = create_app(api_settings)
    app.include_router(probe_router, prefix="/api/v1")
    with TestClient(app, base_url="http://testserver", raise_server_exceptions=False) as client:
        yield client


@dataclass
class TestUser:
    """A user made for a test, with a live session."""

    __test__ = False
    id: int
    public_id: str
    role: str
    email: str
    password: str
    totp_secret: str | None
    access_token: str
    refresh_token: str
    customer_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header for this user's access token."""
        return {"Authorization": f"Bearer {self.access_token}"}

    def code(self) -> str:
        """The current TOTP code."""
        assert self.totp_secret is not None
        return pyotp.TOTP(self.totp_secret).now()


def insert_customer(db: Any) -> int:
    """A bare customers row (the devices service fills personal data in production)."""
    row = db.execute("INSERT INTO customers (language) VALUES ('en') RETURNING id").fetchone()
    return int(row["id"])


def insert_device(db: Any, owner_customer_id: int | None, role: str = "owner") -> str:
    """A device (the shipped 'ev' model), optionally owned by a customer; returns its uid."""
    sync_product_models(db)
    uid = f"dev-{secrets.token_hex(4)}"
    row = db.execute(
        "INSERT INTO devices (uid, serial, model_id) VALUES (%s, %s, 'ev') RETURNING id",
        (uid, f"SN{secrets.token_hex(4)}"),
    ).fetchone()
    if owner_customer_id is not None:
        db.execute(
            "INSERT INTO device_ownerships (device_id, customer_id, role) VALUES (%s, %s, %s)",
            (row["id"], owner_customer_id, role),
        )
    return uid


@pytest.fixture
def make_user(api: TestClient, db: Any) -> Any:
    """Factory: make_user(role, totp=..., customer_id=...) -> TestUser with a session."""

    def factory(
        role: str,
        *,
        totp: bool | None = None,
        customer_id: int | None = None,
        email: str | None = None,
        password: str = PASSWORD,
    ) -> TestUser:
        accounts = api.app.state.accounts  # type: ignore[attr-defined]
        pool = api.app.state.pool  # type: ignore[attr-defined]
        if role == "customer" and customer_id is None:
            customer_id = insert_customer(db)
        secret = (
            pyotp.random_base32() if (totp if totp is not None else role != "customer") else None
        )
        address = email or f"{role}-{secrets.token_hex(4)}@example.com"

        async def create() -> tuple[dict[str, Any], Any]:
            async with pool.connection() as conn:
                user = await accounts.create_user(
                    conn,
                    role=role,
                    email=address,
                    password=password,
                    display_name=f"Test {role}",
                    customer_id=customer_id,
                    totp_secret=secret,
                )
                tokens = await accounts.issue_session(conn, user["id"], "127.0.0.1")
                return user, tokens

        user, tokens = api.portal.call(create)  # type: ignore[union-attr]
        return TestUser(
            id=user["id"],
            public_id=str(user["public_id"]),
            role=role,
            email=address,
            password=password,
            totp_secret=secret,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            customer_id=customer_id,
        )

    return factory


@pytest.fixture
def operator(make_user: Any) -> TestUser:
    """An operator with TOTP and a live session."""
    return make_user("operator")


@pytest.fixture
def support(make_user: Any) -> TestUser:
    """A support user with TOTP and a live session."""
    return make_user("support")


@pytest.fixture
def customer_a(make_user: Any) -> TestUser:
    """Customer A (owns `device_a`)."""
    return make_user("customer")


@pytest.fixture
def customer_b(make_user: Any) -> TestUser:
    """Customer B (owns nothing of A's)."""
    return make_user("customer")


@pytest.fixture
def device_a(db: Any, customer_a: TestUser) -> str:
    """A device owned by customer A; its uid."""
    return insert_device(db, customer_a.customer_id)
