"""Pure pieces of the dashboard: time zones, languages, the health indicator, local accounts."""

from __future__ import annotations

from datetime import UTC, datetime

import pyotp
import pytest
from argon2 import PasswordHasher

from dashboard.accounts import LocalAccounts
from dashboard.auth import LoginRefused, Principal
from dashboard.health import HealthInputs, customer_health
from dashboard.i18n import STRINGS, format_time, t

CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_times_are_shown_in_the_viewers_zone() -> None:
    moment = datetime(2026, 1, 1, 15, 30, tzinfo=UTC)
    assert format_time(moment, "Asia/Tokyo") == "2026-01-02 00:30"
    assert format_time(moment, "America/New_York") == "2026-01-01 10:30"
    assert format_time(moment, "Not/AZone") == "2026-01-01 15:30"  # unknown: UTC
    assert format_time(moment, "../../etc/passwd") == "2026-01-01 15:30"
    assert format_time(None, "UTC") == "—"


def test_every_string_has_english_and_japanese() -> None:
    for key, (en, ja) in STRINGS.items():
        assert en and ja, key
    assert t("nav.fleet", "ja") == "フリート"
    assert t("nav.fleet", "fr") == "Fleet"


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (HealthInputs(2, 2, 0, 0, 0), "good"),
        (HealthInputs(2, 1, 0, 0, 0), "attention"),
        (HealthInputs(2, 2, 0, 1, 0), "attention"),
        (HealthInputs(2, 2, 0, 0, 1), "attention"),
        (HealthInputs(2, 2, 1, 0, 0), "at_risk"),
        (HealthInputs(2, 0, 0, 0, 0), "at_risk"),
        (HealthInputs(2, 2, 0, 0, 3), "at_risk"),
        (HealthInputs(0, 0, 0, 0, 0), "good"),
    ],
)
def test_customer_health(inputs: HealthInputs, expected: str) -> None:
    assert customer_health(inputs) == expected


def test_local_accounts_need_password_and_fresh_code() -> None:
    accounts = LocalAccounts(hasher=CHEAP)
    secret = accounts.add("Ops@Example.com", "pw-123456789", role="operator", display_name="Ops")
    code = pyotp.TOTP(secret).now()
    with pytest.raises(LoginRefused):
        accounts.login("ops@example.com", "wrong", code)
    with pytest.raises(LoginRefused):
        accounts.login("nobody@example.com", "pw-123456789", code)
    token = accounts.login("ops@example.com", "pw-123456789", code)
    assert accounts.resolve(token) == Principal("ops@example.com", "operator", "Ops")
    with pytest.raises(LoginRefused):  # the same code again: replay
        accounts.login("ops@example.com", "pw-123456789", code)
    accounts.logout(token)
    assert accounts.resolve(token) is None


def test_principal_roles_are_consistent() -> None:
    with pytest.raises(ValueError):
        Principal("x", "customer", "X")
    with pytest.raises(ValueError):
        Principal("x", "operator", "X", customer_id=3)
