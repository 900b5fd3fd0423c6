"""Throttling behind a reverse proxy: X-Forwarded-For counts only when a trusted proxy sent it.

Each test runs the real app with a per-address failure limit of 3 and a TestClient whose
peer address is chosen, so the request arrives exactly as it would from that host.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.config import ApiConfig
from app.settings import Settings
from tests.api.conftest import FAST_API_CONFIG

LOGIN = "/api/v1/auth/login"
MAX_FAILURES_PER_IP = 3
PROXY = "10.0.0.2"
INNER_PROXY = "10.0.0.3"


@contextmanager
def client_from(
    api_settings: Settings, peer: str, trusted_proxies: list[str]
) -> Iterator[TestClient]:
    """The app with these trusted proxies, called from `peer`."""
    config = ApiConfig(
        **FAST_API_CONFIG,
        login_max_failures_per_ip=MAX_FAILURES_PER_IP,
        trusted_proxies=trusted_proxies,
    )
    settings = api_settings.model_copy(update={"api": config})
    with TestClient(create_app(settings), client=(peer, 40000)) as client:
        yield client


def failed_login(client: TestClient, forwarded_for: str | None = None) -> int:
    """A wrong password for a fresh address (so only the per-address limit can trip)."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    email = f"nobody-{secrets.token_hex(4)}@example.com"
    response = client.post(LOGIN, json={"email": email, "password": "wrong"}, headers=headers)
    return response.status_code


def attempt_addresses(db: Any) -> list[str]:
    """The client address each login attempt was counted against, oldest first."""
    rows = db.execute("SELECT client_ip FROM login_attempts ORDER BY id").fetchall()
    return [r["client_ip"] for r in rows]


@pytest.mark.parametrize(
    ("peer", "trusted_proxies"),
    [("127.0.0.1", []), ("203.0.113.50", ["10.0.0.0/8"])],
    ids=["no-proxy-configured", "peer-is-not-a-trusted-proxy"],
)
def test_forwarded_for_from_an_untrusted_peer_is_ignored(
    api_settings: Settings, db: Any, peer: str, trusted_proxies: list[str]
) -> None:
    with client_from(api_settings, peer, trusted_proxies) as client:
        spoofed = [f"198.51.100.{i}" for i in range(MAX_FAILURES_PER_IP + 1)]
        statuses = [failed_login(client, forwarded_for=address) for address in spoofed]
    # A fresh forged address on every try does not buy fresh tries.
    assert statuses == [401] * MAX_FAILURES_PER_IP + [429]
    assert set(attempt_addresses(db)) == {peer}


def test_clients_behind_a_trusted_proxy_get_separate_limits(
    api_settings: Settings, db: Any
) -> None:
    alice, bob = "198.51.100.7", "198.51.100.8"
    with client_from(api_settings, PROXY, ["10.0.0.0/8"]) as client:
        assert [failed_login(client, alice) for _ in range(MAX_FAILURES_PER_IP)] == [401] * 3
        assert failed_login(client, alice) == 429
        # Bob shares the proxy's address but not Alice's limit.
        assert failed_login(client, bob) == 401
        # Alice cannot escape by prepending a made-up address: the proxy appends her real one,
        # and the right-most address that is not a trusted proxy is what counts.
        assert failed_login(client, f"192.0.2.99, {alice}") == 429
    assert attempt_addresses(db) == [alice] * MAX_FAILURES_PER_IP + [bob]


def test_a_chain_of_trusted_proxies_is_skipped_to_the_client(
    api_settings: Settings, db: Any
) -> None:
    client_address = "198.51.100.20"
    with client_from(api_settings, PROXY, [PROXY, INNER_PROXY]) as client:
        # Client → edge proxy (INNER_PROXY) → PROXY → app: the edge wrote the client.
        assert failed_login(client, f"{client_address}, {INNER_PROXY}") == 401
    assert attempt_addresses(db) == [client_address]


def test_trusted_proxies_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIZUNA_API__TRUSTED_PROXIES", '["10.0.0.0/8", "192.0.2.1", "::1"]')
    settings = Settings(_env_file=None)
    assert [str(n) for n in settings.api.trusted_proxies] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "::1/128",
    ]
