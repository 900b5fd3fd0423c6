"""Dashboard sign-in throttles per client: behind a trusted proxy by X-Forwarded-For, never else.

The sign-in goes through the API's accounts service, whose per-address failure limit is set
to 3 here; requests reach the real Flask app with a chosen peer address.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.config import ApiConfig
from api.seed import seed_user
from app.settings import Settings
from dashboard.api_auth import ApiAuthenticator
from dashboard.app import create_dash_app
from dashboard.auth import client_address
from devices import service as devices_service
from devices.models import CustomerCreate
from store.db import connect, open_pool
from tests.dashboard.seed import PASSWORD

PROXY = "10.0.0.2"
MAX_FAILURES_PER_IP = 3
TRUSTED = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.5", ["198.51.100.1"], "203.0.113.5"),  # untrusted peer: header ignored
        ("10.0.0.2", [], "10.0.0.2"),  # trusted peer without the header
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["192.0.2.66, 198.51.100.1"], "198.51.100.1"),  # forged left part
        ("10.0.0.2", ["198.51.100.1, 10.0.0.9"], "198.51.100.1"),  # chain of trusted proxies
        ("10.0.0.2", ["192.0.2.66", "198.51.100.1"], "198.51.100.1"),  # repeated header
        ("10.0.0.2", ["198.51.100.1:5123"], "198.51.100.1"),  # with a port
        ("10.0.0.2", ["[2001:db8::7]:443"], "2001:db8::7"),
        ("10.0.0.2", ["not-an-address"], "10.0.0.2"),  # a proxy wrote nonsense
        ("10.0.0.2", ["10.0.0.7, 10.0.0.8"], "10.0.0.7"),  # every hop trusted
        ("::1", ["2001:db8::9"], "2001:db8::9"),
        (None, ["198.51.100.1"], "unknown"),
    ],
)
def test_client_address_follows_the_trusted_proxy_rule(
    peer: str | None, forwarded_for: list[str], expected: str
) -> None:
    assert client_address(peer, forwarded_for, TRUSTED) == expected


@pytest.fixture(scope="module")
def customer_email(dash_settings: Settings) -> str:
    """A customer account without two-factor, so one form post is one whole sign-in."""
    email = "proxy-customer@example.com"
    assert dash_settings.database_url is not None
    with connect(dash_settings.database_url) as conn:
        cipher = devices_service.cipher_from_settings(dash_settings)
        customer = devices_service.create_customer(
            conn, cipher, CustomerCreate(name="Daichi", email=email)
        )
        conn.commit()
    seed_user(
        dash_settings, role="customer", email=email, password=PASSWORD, customer_id=customer.id
    )
    return email


@pytest.fixture
def flask_app(dash_settings: Settings, customer_email: str) -> Iterator[Any]:
    """The dashboard trusting 10.0.0.0/8 as proxies, with a per-address limit of 3."""
    api = dash_settings.api.model_copy(
        update={
            "login_max_failures_per_ip": MAX_FAILURES_PER_IP,
            "trusted_proxies": [ipaddress.ip_network("10.0.0.0/8")],
        }
    )
    settings = dash_settings.model_copy(update={"api": ApiConfig.model_validate(api)})
    assert settings.database_url is not None
    with connect(settings.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM login_attempts")
    pool = open_pool(settings.database_url, settings.store, "dashboard-proxy-test")
    authenticator = ApiAuthenticator(settings)
    try:
        yield create_dash_app(settings, pool=pool, authenticator=authenticator).server
    finally:
        authenticator.close()
        pool.close()


def _sign_in(
    client: FlaskClient, email: str, password: str, peer: str, forwarded_for: str | None
) -> bool:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = client.post(
        "/auth/login",
        data={"email": email, "password": password, "otp": ""},
        headers=headers,
        environ_base={"REMOTE_ADDR": peer},
    )
    assert response.status_code == 303
    return bool(response.headers["Location"] == "/")


def _attempt_addresses(settings: Settings) -> list[str]:
    assert settings.database_url is not None
    with contextlib.closing(connect(settings.database_url, autocommit=True)) as conn:
        rows = conn.execute("SELECT client_ip FROM login_attempts ORDER BY id").fetchall()
    return [r["client_ip"] for r in rows]


def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    flask_app: Any, customer_email: str, dash_settings: Settings
) -> None:
    client, peer = flask_app.test_client(), "203.0.113.5"
    for i in range(MAX_FAILURES_PER_IP):
        assert not _sign_in(client, customer_email, "wrong", peer, f"198.51.100.{i}")
    # A fresh forged address does not buy fresh tries: even the right password is refused.
    assert not _sign_in(client, customer_email, PASSWORD, peer, "198.51.100.99")
    assert set(_attempt_addresses(dash_settings)) == {peer}


def test_people_behind_a_trusted_proxy_get_separate_limits(
    flask_app: Any, customer_email: str, dash_settings: Settings
) -> None:
    client, alice, bob = flask_app.test_client(), "198.51.100.7", "198.51.100.8"
    for _ in range(MAX_FAILURES_PER_IP):
        assert not _sign_in(client, customer_email, "wrong", PROXY, alice)
    assert not _sign_in(client, customer_email, PASSWORD, PROXY, alice)  # Alice is throttled
    assert _sign_in(client, customer_email, PASSWORD, PROXY, bob)  # Bob is not
    assert _attempt_addresses(dash_settings) == [alice] * MAX_FAILURES_PER_IP + [bob]
